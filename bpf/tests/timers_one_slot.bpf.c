// SPDX-License-Identifier: GPL-2.0
/* Test-only: bpf/timers.bpf.c with one slot (slot 1) beside the overflow (slot 0), so that every
 * callback but the first shares "[other]" (tests/kernel/test_library_irq.py). */
#define TIMER_SLOT_MASK 1
#include "../timers.bpf.c"
