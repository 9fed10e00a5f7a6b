/* Placed first on firmware/core's include path by the host build (firmware/core/build.mk).
 * firmware/crypto shares this path: Debian's mbedTLS (MBEDTLS_THREADING_PTHREAD) includes
 * <pthread.h> from mbedtls/threading.h for its mutex type, the only way through here. */
#if defined(MBEDTLS_THREADING_H)
#include_next <pthread.h>
#else
#error "firmware/core is portable C11 with no OS calls: <pthread.h> belongs to a platform (firmware/posix, daemon, firmware/esp-idf), reached through hal.h"
#endif
