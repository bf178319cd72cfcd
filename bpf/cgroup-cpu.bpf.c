// SPDX-License-Identifier: GPL-2.0
/* cgroup-cpu: CPU time per cgroup v2, from the scheduler's own switches: the time between a
 * task being switched in and out is charged to its cgroup. Idle time is not charged.
 *
 * Exported as `cgroup.cpu.time` (ns) by conf/conf.d/cgroup-cpu.toml, labelled by cgroup path
 * (decoder "cgroup"). */
#include "vmlinux.h"
#include "otelbpf.h"

/* When the current task of each CPU was switched in. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
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
	__u64 now = bpf_ktime_get_ns(), *since, cgroup;

	since = bpf_map_lookup_elem(&switched_in, &zero);
	if (!since)
		return 0;
	/* The first switch seen on a CPU only starts the clock. At this tracepoint the current
	 * task is still prev, so bpf_get_current_cgroup_id() is prev's cgroup. */
	if (*since && prev->pid) {
		cgroup = bpf_get_current_cgroup_id();
		map_add(&cgroup_cpu_time, &cgroup, now - *since);
	}
	*since = now;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
