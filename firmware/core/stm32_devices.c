/* SPDX-License-Identifier: MIT */
/*
 * STM32 device table (see stm32_devices.h).
 *
 * Where the values come from:
 *  - PIDs and product-line names: AN2606 "STM32 microcontroller system memory boot mode",
 *    per-series sections and the "bootloader device-dependent parameters" table; checked
 *    against stm32flash's dev_table.c (flash ranges and page sizes of F0..L4 and H74x) and
 *    OpenOCD's flash drivers (stm32f2x.c, stm32l4x.c/.h: PIDs of L4+/U5/WB/WL, maximum
 *    flash sizes, F_SIZE addresses). Read for reference; nothing copied.
 *  - Layouts: the reference manuals' "Flash memory organisation" tables: RM0091 (F0),
 *    RM0008 (F1), RM0033 (F2), RM0316/RM0313/RM0366/RM0364/RM0365 (F3), RM0090/RM0368/
 *    RM0383/RM0390/RM0401/RM0402/RM0430 (F4), RM0385/RM0410/RM0431 (F7), RM0444/RM0454
 *    (G0), RM0440 (G4), RM0433/RM0468/RM0455 (H7), RM0377/RM0367/RM0376 (L0), RM0038
 *    (L1), RM0394/RM0351/RM0432 (L4/L4+), RM0434/RM0473 (WB), RM0453/RM0461 (WL),
 *    RM0456 (U5). F_SIZE: the manuals' "Flash size data register" / "Memory size data
 *    register" sections.
 *  - Erase times: the datasheets' "Flash memory characteristics" tables, maximum values
 *    rounded up (page erase 20-40 ms on F0/F1/F3; sector erase on F2/F4/F7 at x8
 *    parallelism, the slowest setting the bootloader may run at: 16 KiB 0.8 s, 64 KiB
 *    2.4 s, 128 KiB 4 s, mass erase 16 s typical / 32 s max per MiB; 2 KiB pages of
 *    G0/G4/L4/WB/WL about 25 ms max; L0/L1 half-page/page erase about 3-4 ms). These are
 *    timeouts, not estimates: the values err on the long side.
 *
 * Limitations (documented for users): parts whose layout depends on option bytes use the
 * factory default: F42x/F43x/F469 1 MiB parts in dual-bank mode (DB1M=1), F76x/F77x in
 * dual-bank mode, G47x/G48x in single-bank mode (4 KiB pages), L4R/L4S/L4P/L4Q in
 * single-bank mode (8 KiB pages) are not described. H7 parts with 1 MiB and two banks
 * (H74x/75x "xG") have a hole between the banks and are treated as contiguous.
 */
#include "stm32_devices.h"

#include <errno.h>

#define KIB 1024u
#define MIB (1024u * 1024u)

/* Layout helpers: uniform pages, or sector runs. */
#define PAGES(sz) .page_size = (sz), .nruns = 0
#define F2F4_12   /* 4 x 16 KiB, 1 x 64 KiB, 7 x 128 KiB (1 MiB) */                                \
	.page_size = 0, .nruns = 3, .runs = {{4, 16 * KIB}, {1, 64 * KIB}, {7, 128 * KIB}}

/* Family groups: timing (ms: erase_base_ms, erase_ms_per_kib, mass_erase_ms) and the
 * programming unit (write_align, bytes; see stm32_devices.h). */
#define T_F0F1F3 .erase_base_ms = 40, .erase_ms_per_kib = 0, .mass_erase_ms = 40, .write_align = 4
#define T_F2F4(m)                                                                                  \
	.erase_base_ms = 500, .erase_ms_per_kib = 32, .mass_erase_ms = (m), .write_align = 4
#define T_G_L4 .erase_base_ms = 40, .erase_ms_per_kib = 0, .mass_erase_ms = 1000, .write_align = 8
#define T_L0L1 .erase_base_ms = 10, .erase_ms_per_kib = 0, .mass_erase_ms = 0, .write_align = 4
#define T_H7(w)                                                                                    \
	.erase_base_ms = 1000, .erase_ms_per_kib = 32, .mass_erase_ms = 40000, .write_align = (w)
#define T_U5 .erase_base_ms = 40, .erase_ms_per_kib = 0, .mass_erase_ms = 10000, .write_align = 16

#define FL 0x08000000u

static const struct stm32_dev devices[] = {
    /* F0 (AN2606 "STM32F03xxx/F05xxx/F04xxx/F07xxx/F09xxx"); F_SIZE 0x1FFFF7CC */
    {0x440, "STM32F030x8/F05x", "F0", FL, 64 * KIB, PAGES(1 * KIB), .fsize_addr = 0x1FFFF7CC,
     T_F0F1F3},
    {0x444, "STM32F03x", "F0", FL, 32 * KIB, PAGES(1 * KIB), .fsize_addr = 0x1FFFF7CC, T_F0F1F3},
    {0x445, "STM32F04x/F070x6", "F0", FL, 32 * KIB, PAGES(1 * KIB), .fsize_addr = 0x1FFFF7CC,
     T_F0F1F3},
    {0x448, "STM32F070xB/F071/F072", "F0", FL, 128 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFFF7CC,
     T_F0F1F3},
    {0x442, "STM32F030xC/F09x", "F0", FL, 256 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFFF7CC,
     T_F0F1F3},
    /* F1; F_SIZE 0x1FFFF7E0 */
    {0x412, "STM32F10x low-density", "F1", FL, 32 * KIB, PAGES(1 * KIB), .fsize_addr = 0x1FFFF7E0,
     T_F0F1F3},
    {0x410, "STM32F10x medium-density", "F1", FL, 128 * KIB, PAGES(1 * KIB),
     .fsize_addr = 0x1FFFF7E0, T_F0F1F3},
    {0x414, "STM32F10x high-density", "F1", FL, 512 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFFF7E0,
     T_F0F1F3},
    {0x420, "STM32F100 medium-density value line", "F1", FL, 128 * KIB, PAGES(1 * KIB),
     .fsize_addr = 0x1FFFF7E0, T_F0F1F3},
    {0x428, "STM32F100 high-density value line", "F1", FL, 512 * KIB, PAGES(2 * KIB),
     .fsize_addr = 0x1FFFF7E0, T_F0F1F3},
    {0x418, "STM32F105/F107 connectivity line", "F1", FL, 256 * KIB, PAGES(2 * KIB),
     .fsize_addr = 0x1FFFF7E0, T_F0F1F3},
    {0x430, "STM32F10x XL-density", "F1", FL, 1 * MIB, PAGES(2 * KIB), .fsize_addr = 0x1FFFF7E0,
     T_F0F1F3},
    /* F2; F_SIZE 0x1FFF7A22 */
    {0x411, "STM32F2xx", "F2", FL, 1 * MIB, F2F4_12, .fsize_addr = 0x1FFF7A22, T_F2F4(32000)},
    /* F3; F_SIZE 0x1FFFF7CC */
    {0x439, "STM32F301/F302x6/8/F318", "F3", FL, 64 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFFF7CC,
     T_F0F1F3},
    {0x438, "STM32F303x6/8/F334/F328", "F3", FL, 64 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFFF7CC,
     T_F0F1F3},
    {0x422, "STM32F302xB/C/F303xB/C/F358", "F3", FL, 256 * KIB, PAGES(2 * KIB),
     .fsize_addr = 0x1FFFF7CC, T_F0F1F3},
    {0x432, "STM32F373/F378", "F3", FL, 256 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFFF7CC,
     T_F0F1F3},
    {0x446, "STM32F302xD/E/F303xD/E/F398", "F3", FL, 512 * KIB, PAGES(2 * KIB),
     .fsize_addr = 0x1FFFF7CC, T_F0F1F3},
    /* F4; F_SIZE 0x1FFF7A22 */
    {0x413, "STM32F405/F407/F415/F417", "F4", FL, 1 * MIB, F2F4_12, .fsize_addr = 0x1FFF7A22,
     T_F2F4(32000)},
    {0x419, "STM32F42x/F43x", "F4", FL, 2 * MIB, .page_size = 0, .nruns = 6,
     .runs = {{4, 16 * KIB},
              {1, 64 * KIB},
              {7, 128 * KIB},
              {4, 16 * KIB},
              {1, 64 * KIB},
              {7, 128 * KIB}},
     .fsize_addr = 0x1FFF7A22, T_F2F4(64000)},
    {0x423, "STM32F401xB/C", "F4", FL, 256 * KIB, F2F4_12, .fsize_addr = 0x1FFF7A22, T_F2F4(32000)},
    {0x433, "STM32F401xD/E", "F4", FL, 512 * KIB, F2F4_12, .fsize_addr = 0x1FFF7A22, T_F2F4(32000)},
    {0x458, "STM32F410", "F4", FL, 128 * KIB, F2F4_12, .fsize_addr = 0x1FFF7A22, T_F2F4(32000)},
    {0x431, "STM32F411", "F4", FL, 512 * KIB, F2F4_12, .fsize_addr = 0x1FFF7A22, T_F2F4(32000)},
    {0x441, "STM32F412", "F4", FL, 1 * MIB, F2F4_12, .fsize_addr = 0x1FFF7A22, T_F2F4(32000)},
    {0x421, "STM32F446", "F4", FL, 512 * KIB, F2F4_12, .fsize_addr = 0x1FFF7A22, T_F2F4(32000)},
    {0x434, "STM32F469/F479", "F4", FL, 2 * MIB, .page_size = 0, .nruns = 6,
     .runs = {{4, 16 * KIB},
              {1, 64 * KIB},
              {7, 128 * KIB},
              {4, 16 * KIB},
              {1, 64 * KIB},
              {7, 128 * KIB}},
     .fsize_addr = 0x1FFF7A22, T_F2F4(64000)},
    {0x463, "STM32F413/F423", "F4", FL, 1536 * KIB, .page_size = 0, .nruns = 3,
     .runs = {{4, 16 * KIB}, {1, 64 * KIB}, {11, 128 * KIB}}, .fsize_addr = 0x1FFF7A22,
     T_F2F4(48000)},
    /* F7 (single-bank layouts) */
    {0x452, "STM32F72x/F73x", "F7", FL, 512 * KIB, .page_size = 0, .nruns = 3,
     .runs = {{4, 16 * KIB}, {1, 64 * KIB}, {3, 128 * KIB}}, .fsize_addr = 0x1FF07A22,
     T_F2F4(16000)},
    {0x449, "STM32F74x/F75x", "F7", FL, 1 * MIB, .page_size = 0, .nruns = 3,
     .runs = {{4, 32 * KIB}, {1, 128 * KIB}, {3, 256 * KIB}}, .fsize_addr = 0x1FF0F442,
     T_F2F4(32000)},
    {0x451, "STM32F76x/F77x", "F7", FL, 2 * MIB, .page_size = 0, .nruns = 3,
     .runs = {{4, 32 * KIB}, {1, 128 * KIB}, {7, 256 * KIB}}, .fsize_addr = 0x1FF0F442,
     T_F2F4(64000)},
    /* G0; F_SIZE 0x1FFF75E0 */
    {0x466, "STM32G03x/G04x", "G0", FL, 64 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0, T_G_L4},
    {0x456, "STM32G05x/G06x", "G0", FL, 64 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0, T_G_L4},
    {0x460, "STM32G07x/G08x", "G0", FL, 128 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    {0x467, "STM32G0B0/G0B1/G0C1", "G0", FL, 512 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    /* G4; F_SIZE 0x1FFF75E0 */
    {0x468, "STM32G431/G441", "G4", FL, 128 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    {0x469, "STM32G47x/G48x", "G4", FL, 512 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    {0x479, "STM32G491/G4A1", "G4", FL, 512 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    /* H7 */
    {0x450, "STM32H74x/H75x", "H7", FL, 2 * MIB, .page_size = 128 * KIB, .nruns = 0,
     .fsize_addr = 0x1FF1E880, T_H7(32)},
    {0x483, "STM32H72x/H73x", "H7", FL, 1 * MIB, .page_size = 128 * KIB, .nruns = 0,
     .fsize_addr = 0x1FF1E880, T_H7(32)},
    /* RM0455: 128-bit flash words */
    {0x480, "STM32H7A3/H7B3/H7B0", "H7", FL, 2 * MIB, .page_size = 8 * KIB, .nruns = 0,
     .fsize_addr = 0x08FFF80C, T_H7(16)},
    /* L0: no mass erase in the bootloader; F_SIZE 0x1FF8007C */
    {0x457, "STM32L01x/L02x", "L0", FL, 16 * KIB, PAGES(128), .fsize_addr = 0x1FF8007C, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    {0x425, "STM32L031/L041", "L0", FL, 32 * KIB, PAGES(128), .fsize_addr = 0x1FF8007C, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    {0x417, "STM32L05x/L06x", "L0", FL, 64 * KIB, PAGES(128), .fsize_addr = 0x1FF8007C, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    {0x447, "STM32L07x/L08x", "L0", FL, 192 * KIB, PAGES(128), .fsize_addr = 0x1FF8007C, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    /* L1: F_SIZE 0x1FF8004C (cat. 1/2) or 0x1FF800CC (cat. 3/5/6); the cat. 4 / cat. 3
     * PID 0x436 encodes its size differently (0 = 384 KiB), so the table size is used. */
    {0x416, "STM32L1xx cat. 1", "L1", FL, 128 * KIB, PAGES(256), .fsize_addr = 0x1FF8004C, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    {0x429, "STM32L1xx cat. 2", "L1", FL, 128 * KIB, PAGES(256), .fsize_addr = 0x1FF8004C, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    {0x427, "STM32L1xx cat. 3", "L1", FL, 256 * KIB, PAGES(256), .fsize_addr = 0x1FF800CC, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    {0x436, "STM32L1xx cat. 4 / cat. 3", "L1", FL, 384 * KIB, PAGES(256), .fsize_addr = 0, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    {0x437, "STM32L1xx cat. 5/6", "L1", FL, 512 * KIB, PAGES(256), .fsize_addr = 0x1FF800CC, T_L0L1,
     .flags = STM32_DEV_NO_MASS_ERASE},
    /* L4 / L4+; F_SIZE 0x1FFF75E0 */
    {0x464, "STM32L41x/L42x", "L4", FL, 128 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    {0x435, "STM32L43x/L44x", "L4", FL, 256 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    {0x462, "STM32L45x/L46x", "L4", FL, 512 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    {0x415, "STM32L47x/L48x", "L4", FL, 1 * MIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0, T_G_L4},
    {0x461, "STM32L496/L4A6", "L4", FL, 1 * MIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0, T_G_L4},
    {0x470, "STM32L4R/L4S", "L4", FL, 2 * MIB, PAGES(4 * KIB), .fsize_addr = 0x1FFF75E0, T_G_L4},
    {0x471, "STM32L4P5/L4Q5", "L4", FL, 1 * MIB, PAGES(4 * KIB), .fsize_addr = 0x1FFF75E0, T_G_L4},
    /* WB; F_SIZE 0x1FFF75E0 (the top of flash holds the wireless stack, protected by its
     * option bytes: writes there are refused) */
    {0x494, "STM32WB10/WB15", "WB", FL, 320 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    {0x496, "STM32WB30/WB35", "WB", FL, 512 * KIB, PAGES(4 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    {0x495, "STM32WB50/WB55", "WB", FL, 1 * MIB, PAGES(4 * KIB), .fsize_addr = 0x1FFF75E0, T_G_L4},
    /* WL; F_SIZE 0x1FFF75E0 */
    {0x497, "STM32WLE5/WL55", "WL", FL, 256 * KIB, PAGES(2 * KIB), .fsize_addr = 0x1FFF75E0,
     T_G_L4},
    /* U5; F_SIZE 0x0BFA07A0 */
    {0x455, "STM32U535/U545", "U5", FL, 512 * KIB, PAGES(8 * KIB), .fsize_addr = 0x0BFA07A0, T_U5},
    {0x482, "STM32U575/U585", "U5", FL, 2 * MIB, PAGES(8 * KIB), .fsize_addr = 0x0BFA07A0, T_U5},
    {0x481, "STM32U59x/U5Ax", "U5", FL, 4 * MIB, PAGES(8 * KIB), .fsize_addr = 0x0BFA07A0, T_U5},
};

#define NDEV (sizeof(devices) / sizeof(devices[0]))

const struct stm32_dev *stm32_dev_find(uint16_t pid)
{
	for (size_t i = 0; i < NDEV; i++)
		if (devices[i].pid == pid)
			return &devices[i];
	return 0;
}

size_t stm32_dev_count(void)
{
	return NDEV;
}

const struct stm32_dev *stm32_dev_at(size_t i)
{
	return i < NDEV ? &devices[i] : 0;
}

int stm32_dev_unit(const struct stm32_dev *d, uint32_t flash_size, uint32_t off, uint32_t *unit,
                   uint32_t *start, uint32_t *size)
{
	if (off >= flash_size)
		return -ERANGE;
	if (d->page_size) {
		uint32_t u = off / d->page_size;
		*unit = u;
		*start = u * d->page_size;
		*size = d->page_size;
		return 0;
	}
	uint32_t u = 0, base = 0;
	for (uint8_t r = 0; r < d->nruns; r++) {
		for (uint16_t k = 0; k < d->runs[r].count; k++) {
			uint32_t sz = d->runs[r].size;
			if (off - base < sz) {
				*unit = u;
				*start = base;
				*size = sz;
				return 0;
			}
			base += sz;
			u++;
		}
	}
	return -ERANGE; /* flash_size larger than the layout describes */
}

uint32_t stm32_dev_units(const struct stm32_dev *d, uint32_t flash_size)
{
	if (d->page_size)
		return (flash_size + d->page_size - 1) / d->page_size;
	uint32_t u = 0, base = 0;
	for (uint8_t r = 0; r < d->nruns; r++)
		for (uint16_t k = 0; k < d->runs[r].count; k++) {
			if (base >= flash_size)
				return u;
			base += d->runs[r].size;
			u++;
		}
	return u;
}

uint32_t stm32_dev_erase_ms(const struct stm32_dev *d, uint32_t size)
{
	return d->erase_base_ms + d->erase_ms_per_kib * (size / KIB);
}

uint32_t stm32_dev_write_align(const struct stm32_dev *d)
{
	return d->write_align ? d->write_align : 4u;
}
