// SPDX-License-Identifier: GPL-2.0
/* cgroup-cpu: CPU time per cgroup v2, from the scheduler's own switches: the CPU time a task
 * used between being switched in and out is charged to its cgroup. Idle time is not charged.
 *
 * The time is the scheduler's own account of the task (se.sum_exec_runtime, brought up to date
 * before the switch is traced, the same account cgroup's cpu.stat adds up), so no clock is read
 * here: on this project's machine one bpf_ktime_get_ns() call cost more than the program's
 * whole budget.
 *
 * Each CPU gathers the time of one cgroup before adding it to the map: a switch-out of a task of
 * that same cgroup only adds to the CPU's pending time, and the pending time goes into the map
 * once it reaches `batch_ns`, or at the first switch-out of a task of another cgroup on that CPU.
 * Tasks of one cgroup taking turns with idle or with each other (the common case) then cost no
 * hash update per switch; a CPU alternating between cgroups at every switch costs one, as with
 * batch_ns = 0. The map is behind by at most batch_ns per CPU, and as much is lost when the
 * program is detached (a task running at detach loses its whole slice either way).
 *
 * Exported as `cgroup.cpu.time` (ns) by conf/conf.d/cgroup-cpu.toml, labelled by cgroup path
 * (decoder "cgroup"). */
#include "vmlinux.h"
#include "otelbpf.h"

/* Pending CPU time of one cgroup on a CPU is added to the map once it reaches this; 0: at every
 * switch. */
const volatile __u64 batch_ns = 1000000;

/* Per CPU: the task switched in last and its run time at that moment; the cgroup whose time is
 * pending and how much. */
struct cpu_state {
	__u64 task;
	__u64 runtime;
	__u64 cgroup;
	__u64 pending;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_state SEC(".maps");

/* Key: cgroup v2 id (u64). Value: nanoseconds on CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} cgroup_cpu_time SEC(".maps");

/* SCHED_NORMAL, SCHED_BATCH and SCHED_IDLE tasks run in the fair class. */
static __always_inline bool fair_policy(unsigned int policy)
{
	return policy == 0 || policy == 3 || policy == 5;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(charge_cgroup, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 zero = 0;
	struct cpu_state *cpu = bpf_map_lookup_elem(&cpu_state, &zero);
	__u64 cgroup, start, ran;
	bool known;

	if (!cpu)
		return 0;
	/* What prev ran since it was put on this CPU. This CPU's record of that switch gives it
	 * when the record is prev's. Some switches never reach the sched_switch tracepoint (seen on
	 * Linux 6.18: a thread of PID 1 switched in on one CPU, then on another, with no switch out
	 * between), so the record may be another task's, or an old one of prev's. For tasks of the
	 * fair class the scheduler's own mark settles it: set_next_entity() notes sum_exec_runtime
	 * in prev_sum_exec_runtime whenever it puts the task on a CPU, traced or not; the later of
	 * the two starts is used, so an old record never counts time twice. Tasks of other classes
	 * (real-time, deadline) are charged only when their switch in was seen. */
	if (!prev->pid)
		goto record; /* idle time is not charged */
	known = cpu->task == (__u64)prev;
	start = known ? cpu->runtime : 0;
	/* For a task of another class the mark is where it last left the fair class, before its
	 * switch in: never later than the record. */
	if (prev->se.prev_sum_exec_runtime > start)
		start = prev->se.prev_sum_exec_runtime;
	if (!known)
		known = fair_policy(prev->policy);
	if (known && (ran = prev->se.sum_exec_runtime - start)) {
		/* The cgroup id as bpf_get_current_cgroup_id() finds it (prev is still the current
		 * task here), with direct loads, which cost less than the helper call. */
		cgroup = prev->cgroups->dfl_cgrp->kn->id;
		if (cgroup != cpu->cgroup) {
			if (cpu->pending)
				percpu_add(&cgroup_cpu_time, &cpu->cgroup, cpu->pending);
			cpu->cgroup = cgroup;
			cpu->pending = 0;
		}
		cpu->pending += ran;
		if (cpu->pending >= batch_ns) {
			percpu_add(&cgroup_cpu_time, &cgroup, cpu->pending);
			cpu->pending = 0;
		}
	}
record:
	cpu->task = (__u64)next;
	cpu->runtime = next->se.sum_exec_runtime;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
