// SPDX-License-Identifier: GPL-2.0
/* syscalls: how many times each system call was entered, optionally for one process only.
 *
 * Exported as the counter `syscalls` by conf/conf.d/syscalls.toml, labelled by syscall name. */
#include "vmlinux.h"
#include "otelbpf.h"

/* target_tgid: count only this process (thread group id as seen from the initial PID
 * namespace); target_cgroup: only tasks of this cgroup v2; 0 counts every process. Set at load
 * time from the config's [parameters] table. */
OTELBPF_TASK_FILTER

/* Per-CPU values: sys_enter fires on every CPU for every system call, and a handful of syscalls
 * (read, write, futex, ...) dominate. A shared counter would bounce one cache line between all
 * CPUs on each call; per-CPU copies never leave their CPU. The agent sums the copies on read
 * (per_cpu = "sum"). The increment stays atomic: a task can be preempted inside the program
 * and another task on the same CPU can run it, but an atomic on a CPU-local line is cheap.
 * Key: syscall number (u32; negative ids are not counted). Value: number of calls. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} syscall_counts SEC(".maps");

/* raw_tp rather than tracepoint/raw_syscalls/sys_enter: the raw tracepoint hands over the
 * arguments directly instead of first copying every field into a perf trace record. */
SEC("raw_tp/sys_enter")
int BPF_PROG(count_syscall, struct pt_regs *regs, long id)
{
	__u32 nr;

	if (!task_selected())
		return 0;
	/* -1 is not a system call: user space asked for it, or a tracer cancelled the call. */
	if (id < 0)
		return 0;

	nr = id;
	percpu_add(&syscall_counts, &nr, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
