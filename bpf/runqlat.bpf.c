// SPDX-License-Identifier: GPL-2.0
/* runqlat: run queue latency, how long a runnable task waits for a CPU: from its wake-up
 * (sched_wakeup, sched_wakeup_new) or its preemption (sched_switch away from a task still
 * running) until sched_switch puts it on a CPU. Exponential histogram computed in the kernel.
 * A task woken while still on its CPU (its timer fired before it got to switch away, or another
 * CPU woke it first) never waits and is never switched in: that wake-up is a wait of zero.
 * A wake-up or a switch that never reaches the tracepoints goes unmeasured: on Linux 6.18 under
 * load, about 1 in 10^4 of a process's switches in counted by the kernel (/proc/PID/schedstat).
 *
 * Exported as `sched.runqueue.latency` (ns) by conf/conf.d/runqlat.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

#define SCALE 3
#define TASK_RUNNING 0

/* Only tasks of this process (its tgid); 0: every task. The woken task is not the current one
 * at wake-up, so this is the task's own tgid rather than OTELBPF_TASK_FILTER. */
const volatile __u32 target_tgid = 0;

/* When each runnable task became runnable (0: not queued), in the task's own storage: no hash
 * lookup or lock on these hot paths, and nothing left behind when a queued task exits. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} queued_at SEC(".maps");

struct latency_key {
	__s32 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 512);
	__type(key, struct latency_key);
	__type(value, __u64);
} runq_latency SEC(".maps");

static __always_inline bool measured(struct task_struct *p)
{
	return p->pid && (!target_tgid || p->tgid == target_tgid);
}

/* bpf_ktime_get_ns() is the costliest step of these programs (~65 ns per call on this project's
 * machine): it is read only for a task measured, and at most once per run. now: 0 to read it. */
static __always_inline void enqueued(struct task_struct *p, __u64 now)
{
	__u64 *at;

	if (!measured(p))
		return;
	at = bpf_task_storage_get(&queued_at, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (at)
		*at = now ?: bpf_ktime_get_ns();
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(runq_wakeup, struct task_struct *p)
{
	struct latency_key key = {};

	/* on_cpu exists where the kernel is built for SMP. */
	if (bpf_core_field_exists(p->on_cpu) && p->on_cpu) {
		if (measured(p))
			increment_exp_histogram(&runq_latency, key, 0, SCALE);
	} else {
		enqueued(p, 0);
	}
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(runq_wakeup_new, struct task_struct *p)
{
	enqueued(p, 0);
	return 0;
}

/* prev_state is the fourth argument since Linux 5.18. */
SEC("tp_btf/sched_switch")
int BPF_PROG(runq_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct latency_key key = {};
	__u64 *queued, now = 0;

	queued = bpf_task_storage_get(&queued_at, next, 0, 0);
	if (queued && *queued) {
		now = bpf_ktime_get_ns();
		increment_exp_histogram(&runq_latency, key, now - *queued, SCALE);
		*queued = 0;
	}
	/* Preempted while runnable: it waits in the queue again from now. */
	if (prev_state == TASK_RUNNING)
		enqueued(prev, now);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
