// SPDX-License-Identifier: GPL-2.0
/* syscall-latency: how long each system call takes, from entry to return, per system call, as
 * an OpenTelemetry exponential histogram computed in the kernel (scale 3, ~9 % per bucket).
 *
 * Exported as `syscall.duration` (ns) by conf/conf.d/syscall-latency.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

#define SCALE 3

OTELBPF_TASK_FILTER
OTELBPF_SAMPLING

struct entry {
	__u64 ns;
	__u32 nr;
};

/* Entry time and syscall number per thread. LRU: a thread that exits inside a call (exit, execve that succeeds in
 * another image) never returns, and its entry must not stay forever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct entry);
} entered_at SEC(".maps");

struct latency_key {
	__u32 nr;
	__s32 bucket;
};

/* Per-CPU: every CPU returns from system calls all the time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct latency_key);
	__type(value, __u64);
} syscall_latency SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(syscall_enter, struct pt_regs *regs, long id)
{
	__u32 tid = bpf_get_current_pid_tgid();
	struct entry e = {};

	if (id < 0 || !task_selected() || !sampled())
		return 0;
	e.nr = id;
	e.ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&entered_at, &tid, &e, BPF_ANY);
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(syscall_exit, struct pt_regs *regs, long ret)
{
	__u32 tid = bpf_get_current_pid_tgid();
	struct latency_key key = {};
	struct entry *entered;
	__u64 ns;

	entered = bpf_map_lookup_elem(&entered_at, &tid);
	if (!entered)
		return 0;
	ns = bpf_ktime_get_ns() - entered->ns;
	key.nr = entered->nr;
	bpf_map_delete_elem(&entered_at, &tid);
	increment_exp_histogram_weighted(&syscall_latency, key, ns, SCALE, sample_every);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
