/* SPDX-License-Identifier: MIT */
/*
 * STM32 device table for the AN3155 master (stm32_isp.h): what the bootloader's GET ID
 * (product ID, "PID") says about a part's main flash.
 *
 * One entry per PID. A PID covers a line of parts with different flash sizes: the entry
 * holds the largest, and stm32_isp reads the part's flash-size register (F_SIZE, in KiB)
 * through READ MEMORY where the entry gives its address, falling back to the table size
 * when the bootloader refuses (read protection, or the address is outside what its READ
 * MEMORY allows).
 *
 * Erase units: "pages" (uniform size) or "sectors" (runs of equal sizes, e.g. F4: 4 x
 * 16 KiB, 1 x 64 KiB, 7 x 128 KiB). Units are numbered from 0 at flash_base across the
 * whole flash (both banks of a dual-bank part), which is the numbering ERASE (0x43) and
 * EXTENDED ERASE (0x44) take (AN3155 sections 3.7, 3.8).
 *
 * Sources: PIDs and part names from AN2606 "STM32 microcontroller system memory boot
 * mode" (the per-series "bootloader device-dependent parameters" tables), checked against
 * stm32flash 0.7's dev_table.c (read, not copied); flash sizes and page/sector layouts
 * from each series' reference manual ("Flash memory organisation"); erase times (worst
 * case, used as timeouts) from the datasheets' "Flash memory characteristics" tables.
 * Details per entry in stm32_devices.c.
 */
#ifndef ESPSTM_STM32_DEVICES_H
#define ESPSTM_STM32_DEVICES_H

#include <stddef.h>
#include <stdint.h>

/* A run of `count` erase units of `size` bytes each. */
struct stm32_sector_run {
	uint16_t count;
	uint32_t size;
};

#define STM32_DEV_MAX_RUNS 6

struct stm32_dev {
	uint16_t pid;        /* GET ID answer, e.g. 0x410 */
	const char *name;    /* "STM32F10xxx medium-density" */
	const char *family;  /* "F1" */
	uint32_t flash_base; /* main flash start, bytes (0x08000000) */
	uint32_t flash_size; /* largest main flash of this PID, bytes */
	/* Erase units: page_size != 0: uniform pages of that many bytes; else sectors[]. */
	uint32_t page_size;
	uint8_t nruns;
	struct stm32_sector_run runs[STM32_DEV_MAX_RUNS];
	/* Address of the 16-bit flash-size register (value in KiB), 0 = none known. */
	uint32_t fsize_addr;
	/* Worst-case erase time of one unit: erase_base_ms + erase_ms_per_kib * (size/1024),
	 * and of a mass erase (ms). Datasheet maximum values (typical where no maximum is
	 * given, doubled). */
	uint16_t erase_base_ms;
	uint16_t erase_ms_per_kib;
	uint32_t mass_erase_ms;
	uint32_t flags; /* STM32_DEV_* */
	/* Flash programming unit (bytes): WRITE MEMORY addresses must be multiples of it and
	 * a last block is padded with 0xFF to a whole unit (the bootloader programs whole
	 * units). 4 on F0/F1/F2/F3/F4/F7/L0/L1 (AN3155 3.6: address and length multiples of
	 * 4), 8 on G0/G4/L4/WB/WL (64-bit double words, RM0444/RM0440/RM0351/RM0434/RM0453
	 * "Flash program and erase operations"), 16 on U5 and H7A3/B3 (128-bit quad words,
	 * RM0456, RM0455), 32 on the other H7 (256-bit flash words, RM0433, RM0468). 0 means
	 * 4 (see stm32_dev_write_align()). */
	uint8_t write_align;
};

/* flags: the bootloader has no global/mass erase (L0, L1: stm32flash's F_NO_ME); a mass
 * erase is done as an erase of every unit instead. */
#define STM32_DEV_NO_MASS_ERASE 0x01u

/* Entry for pid, or NULL if the table has none. */
const struct stm32_dev *stm32_dev_find(uint16_t pid);

/* Number of entries, and entry i (0 <= i < count; NULL outside). For listing/tests. */
size_t stm32_dev_count(void);
const struct stm32_dev *stm32_dev_at(size_t i);

/*
 * Erase unit holding flash offset off (bytes from flash_base) of a part whose flash is
 * flash_size bytes (<= d->flash_size; a smaller part keeps the layout's first units).
 * Writes the unit's number, its start offset and size (bytes). Returns 0, or -ERANGE if
 * off >= flash_size.
 */
int stm32_dev_unit(const struct stm32_dev *d, uint32_t flash_size, uint32_t off, uint32_t *unit,
                   uint32_t *start, uint32_t *size);

/* Number of erase units in the first flash_size bytes of d's layout. */
uint32_t stm32_dev_units(const struct stm32_dev *d, uint32_t flash_size);

/* Worst-case erase time (ms) of one unit of size bytes on d (see erase_base_ms). */
uint32_t stm32_dev_erase_ms(const struct stm32_dev *d, uint32_t size);

/* Programming unit of d in bytes (write_align, 4 when the entry gives none): a power of two,
 * 4..32, dividing 256 (STM32_ISP_BLOCK). */
uint32_t stm32_dev_write_align(const struct stm32_dev *d);

#endif
