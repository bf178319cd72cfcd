// SPDX-License-Identifier: GPL-2.0
/* execsnoop: one ring buffer record per successful exec(), aggregated in user space.
 *
 * Exported by conf/conf.d/execsnoop.toml as the counter `execsnoop.execs`, labelled by the new
 * command name and its parent's command name. Command names are unbounded in principle, which is
 * why this is a stream and not an in-kernel hash map: the agent's cardinality limit folds the
 * long tail into one overflow series instead of the map silently filling up. */
#include "vmlinux.h"
#include "otelbpf.h"

#define TASK_COMM_LEN 16

/* Keep in step with the `fields` of conf/conf.d/execsnoop.toml. */
struct exec_event {
	__u32 tgid;
	__u32 ppid;
	char comm[TASK_COMM_LEN];  /* after exec: the new program's name */
	char pcomm[TASK_COMM_LEN]; /* the parent's name */
};

/* 256 KiB holds ~6500 records: seconds of exec storms while the agent is busy elsewhere.
 * Reservations that fail anyway are counted in exec_events_drops (otelbpf.stream.lost). */
OTELBPF_RINGBUF(exec_events, 256 * 1024);

/* sched_process_exec fires after the new image is in place (comm already renamed), and only
 * for execs that succeeded. */
SEC("tracepoint/sched/sched_process_exec")
int execsnoop(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct exec_event *e;

	e = OTELBPF_RINGBUF_RESERVE(exec_events, struct exec_event);
	if (!e)
		return 0;
	e->tgid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* All 16 bytes, not a string copy: the kernel keeps comm NUL-padded, while a string copy
	 * would leave stale ring bytes after the NUL and make equal names differ as label keys. */
	BPF_CORE_READ_INTO(&e->pcomm, task, real_parent, comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
