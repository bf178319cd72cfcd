// SPDX-License-Identifier: GPL-2.0
/* Test-only: an empty tracepoint program on a syscall nothing else on the test host calls, so its
 * kernel run_cnt equals the number of os.sched_get_priority_max() calls the test makes. */
#include "vmlinux.h"
#include "otelbpf.h"

SEC("tracepoint/syscalls/sys_enter_sched_get_priority_max")
int health_tp(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
