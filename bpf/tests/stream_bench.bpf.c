// SPDX-License-Identifier: GPL-2.0
/* Record generator for benchmarks/streams.py: writes `count` records into a 16 MiB ring buffer
 * from a SEC("syscall") program run with BPF_PROG_TEST_RUN, so producing costs no system call
 * per record and the consumer is what gets measured. */
#include "vmlinux.h"
#include "otelbpf.h"

struct bench_event {
	__u32 key;   /* label: seq % keys */
	__u32 pad;
	__u64 value; /* histogram value: a spread of latency-like numbers, 1 .. 2^20 */
};

struct bench_args {
	__u32 count;
	__u32 keys;
	__u32 first_seq;
};

OTELBPF_RINGBUF(bench_ring, 16 << 20);

static long emit(__u64 i, struct bench_args *a)
{
	__u32 seq = a->first_seq + (__u32)i;
	struct bench_event *e = OTELBPF_RINGBUF_RESERVE(bench_ring, struct bench_event);

	if (!e)
		return 0; /* ring full: counted in bench_ring_drops, keep going */
	e->key = a->keys ? seq % a->keys : 0;
	e->pad = 0;
	e->value = ((seq * 2654435761u) >> 12) + 1;
	/* No wake-up per record: the reader is either busy draining or polls with a timeout; the
	 * last record of a run forces one so a sleeping reader notices the batch. */
	bpf_ringbuf_submit(e, i + 1 == a->count ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("syscall")
int bench_generate(struct bench_args *args)
{
	struct bench_args a = { .count = args->count, .keys = args->keys, .first_seq = args->first_seq };
	/* A separately loaded u32: clang may otherwise hand bpf_loop a 64-bit register holding two
	 * fields, and the verifier's inlined bpf_loop compares all 64 bits against the loop limit. */
	__u32 count = args->count;

	return bpf_loop(count, emit, &a, 0);
}

char LICENSE[] SEC("license") = "GPL";
