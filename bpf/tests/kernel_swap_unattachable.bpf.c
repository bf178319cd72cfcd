// SPDX-License-Identifier: GPL-2.0
/* Test-only: kernel_swap plus a program on a tracepoint that does not exist (see there). */
#define WITH_MISSING_TRACEPOINT
#include "kernel_swap.bpf.c"
