// SPDX-License-Identifier: GPL-2.0
/* signals: one perf buffer record per generated signal, aggregated in user space.
 *
 * The perf-buffer counterpart of execsnoop (BPF_MAP_TYPE_PERF_EVENT_ARRAY works on kernels
 * before 5.8, which lack the ring buffer). Exported by conf/conf.d/signals.toml as the counter
 * `signals.generated`, labelled by signal number and the target's command name. */
#include "vmlinux.h"
#include "otelbpf.h"

#define TASK_COMM_LEN 16

/* Keep in step with the `fields` of conf/conf.d/signals.toml. */
struct signal_event {
	__u32 sig;
	__u32 pid;    /* target task */
	__s32 result; /* TRACE_SIGNAL_*: 0 delivered, 1 ignored, 2 already pending, ... */
	__u32 sender; /* tgid of the task that generated it */
	char comm[TASK_COMM_LEN]; /* target's command name */
};

/* One perf ring per CPU; libbpf sizes max_entries to the number of CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} signal_events SEC(".maps");

/* signal_generate fires once per signal sent, even when the target ignores it or already has it
 * pending, so a test can count exactly what it sends. */
SEC("tracepoint/signal/signal_generate")
int signals(struct trace_event_raw_signal_generate *ctx)
{
	struct signal_event e = {};

	e.sig = ctx->sig;
	e.pid = ctx->pid;
	e.result = ctx->result;
	e.sender = bpf_get_current_pid_tgid() >> 32;
	/* ctx can only be read with constant offsets from its start: copy the array with a helper */
	bpf_probe_read_kernel(e.comm, sizeof(e.comm), ctx->comm);
	/* Losses (ring full) come back to the reader as PERF_RECORD_LOST: otelbpf.stream.lost. */
	bpf_perf_event_output(ctx, &signal_events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
