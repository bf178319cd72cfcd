// SPDX-License-Identifier: GPL-2.0
/* cgroup-cpu: CPU time per cgroup v2, from the scheduler's own switches: the CPU time a task
 * used between being switched in and out is charged to its cgroup. Idle time is not charged.
 *
 * The time is the scheduler's own account of the task (se.sum_exec_runtime, brought up to date
 * before the switch is traced, the same account cgroup's cpu.stat adds up), so no clock is read
 * here: on this project's machine one bpf_ktime_get_ns() call cost more than the program's
 * whole budget.
 *
 * Exported as `cgroup.cpu.time` (ns) by conf/conf.d/cgroup-cpu.toml, labelled by cgroup path
 * (decoder "cgroup"). */
#include "vmlinux.h"
#include "otelbpf.h"

/* The task each CPU switched in last, and its run time at that moment. */
struct switched_in {
	__u64 task;
	__u64 runtime;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct switched_in);
} switched_in SEC(".maps");

/* Key: cgroup v2 id (u64). Value: nanoseconds on CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} cgroup_cpu_time SEC(".maps");

SEC("tp_btf/sched_switch")
int BPF_PROG(charge_cgroup, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 zero = 0;
	struct switched_in *in = bpf_map_lookup_elem(&switched_in, &zero);
	__u64 cgroup;

	if (!in)
		return 0;
	/* Charged only when this CPU's switch-in of prev was seen (not the first switch after
	 * attaching, nor after a missed run). The cgroup id is read as bpf_get_current_cgroup_id()
	 * finds it (prev is still the current task here), with direct loads, which cost less
	 * than the helper call. */
	if (in->task == (__u64)prev && prev->pid) {
		cgroup = prev->cgroups->dfl_cgrp->kn->id;
		percpu_add(&cgroup_cpu_time, &cgroup, prev->se.sum_exec_runtime - in->runtime);
	}
	in->task = (__u64)next;
	in->runtime = next->se.sum_exec_runtime;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
