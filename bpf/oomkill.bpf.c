// SPDX-License-Identifier: GPL-2.0
/* oomkill: one ring buffer record per process the OOM killer chose (mark_victim), with its
 * command name and memory at the time, aggregated by the agent.
 *
 * Exported as `oom.kills` by conf/conf.d/oomkill.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

#define TASK_COMM_LEN 16

/* Keep in step with the `fields` of conf/conf.d/oomkill.toml. */
struct oom_event {
	__u32 tgid;
	__u32 uid;
	__u64 total_vm_pages;
	char comm[TASK_COMM_LEN];
};

/* OOM kills are rare: a small ring is plenty. */
OTELBPF_RINGBUF(oom_events, 16 * 1024);

SEC("tp_btf/mark_victim")
int BPF_PROG(oom_victim, struct task_struct *task, uid_t uid)
{
	struct oom_event *e = OTELBPF_RINGBUF_RESERVE(oom_events, struct oom_event);

	if (!e)
		return 0;
	e->tgid = task->tgid;
	e->uid = uid;
	e->total_vm_pages = task->mm ? task->mm->total_vm : 0;
	__builtin_memcpy(e->comm, task->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
