/* SPDX-License-Identifier: MIT */
/*
 * Start-up and exception vectors for the lx106 test image run under
 * qemu-system-xtensa -M sim -cpu lx106 -semihosting (call0 ABI, XEA2, no OS).
 *
 * _start: stack, zeroed .bss, VECBASE -> our vectors, main(), then simcall exit(main's
 * return). Any exception (unaligned load/store, illegal instruction, bad address, ...)
 * lands in lx_fault(kind, EXCCAUSE, EPC1, EXCVADDR) in runner.c, which reports it and
 * exits non-zero: nothing is emulated or fixed up, so an unaligned access fails the run.
 */
#define SYS_EXIT 1

/* The sim machine resets the CPU after loading the ELF, so execution starts at the lx106
 * reset vector (0x50000000, its system ROM), not at the ELF entry: jump to _start. */
	.section .reset, "ax"
	.global	lx_reset
lx_reset:
	j	1f
	.align	4
2:	.word	_start
1:	l32r	a0, 2b
	jx	a0

	.section .vectors, "ax"
	.align	256
	.global	lx_vectors
lx_vectors:
	.org	lx_vectors + 0x10	/* level 2 / debug */
	movi	a2, 2
	j	fault_common
	.org	lx_vectors + 0x20	/* NMI (level 3) */
	movi	a2, 3
	j	fault_common
	.org	lx_vectors + 0x30	/* kernel exception */
	movi	a2, 1
	j	fault_common
	.org	lx_vectors + 0x50	/* user exception */
	movi	a2, 0
	j	fault_common
	.org	lx_vectors + 0x70	/* double exception */
	movi	a2, 4
	j	fault_common
	.org	lx_vectors + 0x80

	.text
	.literal_position
	.align	4
	.global	_start
_start:
	movi	a0, 0
	movi	a1, __stack_top
	/* PS: ring 0, EXCM clear, interrupts masked (INTLEVEL 15 is clamped to max) */
	movi	a2, 0x0000000f
	wsr	a2, ps
	rsync
	movi	a2, lx_vectors
	wsr	a2, vecbase
	rsync
	/* zero .bss */
	movi	a2, __bss_start
	movi	a3, __bss_end
1:	bgeu	a2, a3, 2f
	s32i	a0, a2, 0
	addi	a2, a2, 4
	j	1b
2:	call0	main
	mov	a3, a2
	movi	a2, SYS_EXIT
	simcall
3:	j	3b

	.align	4
fault_common:
	movi	a1, __fault_stack_top
	rsr	a3, exccause
	rsr	a4, epc1
	rsr	a5, excvaddr
	call0	lx_fault
4:	j	4b
