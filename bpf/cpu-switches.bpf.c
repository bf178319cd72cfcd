// SPDX-License-Identifier: GPL-2.0
/* cpu-switches: context switches by why the task left the CPU: preempted while still runnable
 * (involuntary) or gone to sleep, interruptibly (S) or not (D, usually I/O) (voluntary).
 *
 * Exported as `sched.switches` by conf/conf.d/cpu-switches.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

OTELBPF_TASK_FILTER

/* Reasons as exported; the config's static_map decoder names them. */
enum switch_reason {
	SWITCH_PREEMPTED = 0,
	SWITCH_SLEEP = 1,      /* TASK_INTERRUPTIBLE */
	SWITCH_DISK_SLEEP = 2, /* TASK_UNINTERRUPTIBLE */
	SWITCH_OTHER = 3,      /* stopped, traced, exiting, ... */
	SWITCH_REASONS,
};

struct switch_key {
	__u32 reason;
};

/* An array indexed by reason: the lookup is inlined, no hashing on every context switch. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SWITCH_REASONS);
	__type(key, struct switch_key);
	__type(value, __u64);
} cpu_switches SEC(".maps");

/* At sched_switch the current task is still prev, so the process filter applies to it. */
SEC("tp_btf/sched_switch")
int BPF_PROG(count_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct switch_key key;

	if (!task_selected())
		return 0;
	if (preempt || prev_state == 0)
		key.reason = SWITCH_PREEMPTED;
	else if (prev_state & 0x1)
		key.reason = SWITCH_SLEEP;
	else if (prev_state & 0x2)
		key.reason = SWITCH_DISK_SLEEP;
	else
		key.reason = SWITCH_OTHER;
	percpu_add(&cpu_switches, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
