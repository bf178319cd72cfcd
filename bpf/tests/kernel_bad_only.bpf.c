// SPDX-License-Identifier: GPL-2.0
/* Test-only: kernel_bad without its valid program, so nothing in the object can load. */
#define ONLY_BROKEN
#include "kernel_bad.bpf.c"
