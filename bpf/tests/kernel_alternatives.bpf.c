// SPDX-License-Identifier: GPL-2.0
/* Test-only: one job, counting the getpgid calls of one process, done four ways in the order a
 * config lists them as alternatives: fentry, kprobe, then the sys_enter tracepoint twice. Each
 * counts into the same map, so two of them attached at once would count every call twice. */
#include "vmlinux.h"
#include "otelbpf.h"

#if defined(__TARGET_ARCH_x86)
#define SYS_GETPGID 121
#define GETPGID_FUNCTION "__x64_sys_getpgid"
#elif defined(__TARGET_ARCH_arm64)
#define SYS_GETPGID 155
#define GETPGID_FUNCTION "__arm64_sys_getpgid"
#endif

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

static __always_inline int count_call(void)
{
	__u32 zero = 0;

	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		map_add(&calls, &zero, 1);
	return 0;
}

SEC("fentry/" GETPGID_FUNCTION)
int BPF_PROG(count_fentry)
{
	return count_call();
}

SEC("kprobe/" GETPGID_FUNCTION)
int count_kprobe(void *ctx)
{
	return count_call();
}

SEC("raw_tp/sys_enter")
int BPF_PROG(count_tracepoint, struct pt_regs *regs, long id)
{
	return id == SYS_GETPGID ? count_call() : 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(count_tracepoint_again, struct pt_regs *regs, long id)
{
	return id == SYS_GETPGID ? count_call() : 0;
}

char LICENSE[] SEC("license") = "GPL";
