// SPDX-License-Identifier: GPL-2.0
/* Test-only: kernel_pins with an incompatible `pinned_counts` layout (16-byte values). */
#define PIN_VALUE_STRUCT
#include "kernel_pins.bpf.c"
