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

/* Entry time and syscall number per thread, in the thread's own task storage: no hash lookup,
 * no lock, and the entry goes away with the thread (one that exits inside a call never
 * returns). ns == 0: no call in flight that we measure. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
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
	struct entry *e;

	if (id < 0 || !task_selected() || !sampled())
		return 0;
	e = bpf_task_storage_get(&entered_at, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!e)
		return 0;
	e->nr = id;
	e->ns = bpf_ktime_get_ns();
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(syscall_exit, struct pt_regs *regs, long ret)
{
	struct latency_key key = {};
	struct entry *entered;
	__u64 ns;

	/* No F_CREATE: a thread we never saw enter has nothing to measure. */
	entered = bpf_task_storage_get(&entered_at, bpf_get_current_task_btf(), 0, 0);
	if (!entered || !entered->ns)
		return 0;
	ns = bpf_ktime_get_ns() - entered->ns;
	key.nr = entered->nr;
	entered->ns = 0;
	increment_exp_histogram_weighted(&syscall_latency, key, ns, SCALE, sample_every);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
