/* Placed first on firmware/core's include path by the host build (firmware/core/build.mk). */
#error "firmware/core is portable C11 with no OS calls: <unistd.h> belongs to a platform (firmware/posix, daemon, firmware/esp-idf), reached through hal.h"
