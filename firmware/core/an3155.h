/* SPDX-License-Identifier: MIT */
/*
 * The byte values of ST AN3155 "USART protocol used in the STM32 bootloader": command codes
 * under their AN3155 names (chapter 3, one section per command), the answer bytes and the
 * special codes of ERASE / EXTENDED ERASE. Used by the AN3155 master (stm32_isp*.c).
 */
#ifndef ESPSTM_AN3155_H
#define ESPSTM_AN3155_H

/* Answers and synchronisation (AN3155 2 "Bootloader code sequence"; AN2606 autobaud). */
#define AN3155_SYNC 0x7F /* first byte after reset: the bootloader measures the baud */
#define AN3155_ACK  0x79 /* acknowledge */
#define AN3155_NACK 0x1F /* not acknowledge */
#define AN3155_BUSY 0x76 /* v3.x bootloaders: still working, the ACK/NACK follows */

/* Commands (AN3155 3.x); each is sent as the code and its complement (code ^ 0xFF). */
#define AN3155_GET               0x00 /* 3.1: version and the list of commands */
#define AN3155_GVR               0x01 /* 3.2: GET VERSION and read protection status */
#define AN3155_GID               0x02 /* 3.3: GET ID, the product ID (PID) */
#define AN3155_READ_MEMORY       0x11 /* 3.4: up to 256 bytes from an address */
#define AN3155_GO                0x21 /* 3.5: jump to the application */
#define AN3155_WRITE_MEMORY      0x31 /* 3.6: up to 256 bytes to RAM or flash */
#define AN3155_ERASE             0x43 /* 3.7: ERASE MEMORY, pages as one byte each */
#define AN3155_EXTENDED_ERASE    0x44 /* 3.8: pages as two bytes each, special codes */
#define AN3155_WRITE_PROTECT     0x63 /* 3.9 */
#define AN3155_WRITE_UNPROTECT   0x73 /* 3.10: the chip resets after the second ACK */
#define AN3155_READOUT_PROTECT   0x82 /* 3.11 */
#define AN3155_READOUT_UNPROTECT 0x92 /* 3.12: mass-erases the flash, then resets */

/* Most data bytes one READ MEMORY / WRITE MEMORY moves (AN3155 3.4, 3.6). */
#define AN3155_MAX_DATA 256

/* ERASE (3.7): N = 0xFF followed by the checksum 0x00 erases the whole flash. */
#define AN3155_ERASE_GLOBAL 0xFF

/* EXTENDED ERASE (3.8) special codes, sent in place of N (MSB first) + checksum. */
#define AN3155_EXTENDED_ERASE_MASS  0xFFFFu /* mass erase */
#define AN3155_EXTENDED_ERASE_BANK1 0xFFFEu /* bank 1 erase */
#define AN3155_EXTENDED_ERASE_BANK2 0xFFFDu /* bank 2 erase */

#endif
