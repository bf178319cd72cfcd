// SPDX-License-Identifier: GPL-2.0
/* Test-only: counts the test process's getpid calls into `calls`. kernel_swap_unattachable.bpf.c
 * defines WITH_MISSING_TRACEPOINT and includes this file: the same map (so a reload shares its
 * pin) plus a program whose tracepoint does not exist, so that version fails only at attach. */
#include "vmlinux.h"
#include "otelbpf.h"

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
	__u32 key = 0;

	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		map_add(&calls, &key, 1);
	return 0;
}

#ifdef WITH_MISSING_TRACEPOINT
SEC("tracepoint/syscalls/sys_enter_otelbpf_missing")
int on_missing(void *ctx)
{
	return 0;
}
#endif

char LICENSE[] SEC("license") = "GPL";
