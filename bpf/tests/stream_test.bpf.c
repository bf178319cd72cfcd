// SPDX-License-Identifier: GPL-2.0
/* Record generators for the stream reader tests (tests/streams/).
 *
 * Ring buffer: SEC("syscall") programs run with BPF_PROG_TEST_RUN; `struct gen_args` is the
 * context, so each run says exactly what it writes. Perf buffer: a tracepoint on getpgid(2) for
 * one process emits `pid` records per call, so os.getpgid(N) writes exactly N records.
 */
#include "vmlinux.h"
#include "otelbpf.h"

struct rec {
	__u32 seq;
	__u32 key;
	__u64 value;
	__u8 tail[48]; /* extra payload for variable-length records */
};

struct gen_args {
	__u32 count;         /* records to write */
	__u32 first_seq;     /* seq of the first record */
	__u32 keys;          /* key = seq % keys */
	__u32 discard_every; /* when > 0: records with seq % discard_every == 0 are discarded */
	__u32 vary;          /* when > 0: payload = 16 + 8 * (seq % vary) bytes, vary <= 6 (bpf_ringbuf_output) */
	__u32 spin;          /* when > 0: hold the last record reserved (BUSY) until user space sets
	                      * spin_release[0], or for `spin` rounds of 2^23 bpf_loop steps at most */
};

OTELBPF_RINGBUF(test_ring, 4096);     /* one page: wraps quickly */
OTELBPF_RINGBUF(big_ring, 1 << 20);

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} test_perf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} spin_release SEC(".maps");

const volatile __u32 target_tgid = 0;

struct gen_ctx {
	struct gen_args *args;
	void *ring;
	void *drops;
	void *tp_ctx;
};

static __always_inline void fill(struct rec *r, __u32 seq, __u32 keys)
{
	r->seq = seq;
	r->key = keys ? seq % keys : 0;
	r->value = seq;
}

static long emit_one(__u64 i, struct gen_ctx *g)
{
	struct gen_args *a = g->args;
	__u32 seq = a->first_seq + (__u32)i;

	if (a->vary) {
		struct rec r = {};
		/* 16..56 bytes; the mask keeps the verifier's bound next to the call */
		__u32 size = (16 + 8 * (seq % a->vary)) & 0x38;

		fill(&r, seq, a->keys);
		if (size < 16)
			size = 16;
		if (bpf_ringbuf_output(g->ring, &r, size, 0))
			otelbpf_count_drop(g->drops);
		return 0;
	}
	struct rec *r = bpf_ringbuf_reserve(g->ring, 16, 0);
	if (!r) {
		otelbpf_count_drop(g->drops);
		return 0;
	}
	fill(r, seq, a->keys);
	if (a->discard_every && seq % a->discard_every == 0)
		bpf_ringbuf_discard(r, 0);
	else
		bpf_ringbuf_submit(r, 0);
	return 0;
}

static bool released(void)
{
	__u32 zero = 0;
	__u32 *v = bpf_map_lookup_elem(&spin_release, &zero);

	return v && *v;
}

static long spin_one(__u64 i, void *ctx)
{
	return released() ? 1 : 0;
}

static int generate(struct gen_args *args, void *ring, void *drops)
{
	struct gen_ctx g = { .args = args, .ring = ring, .drops = drops };
	__u32 count = args->count;

	if (args->spin && count > 0)
		count -= 1;
	bpf_loop(count, emit_one, &g, 0);
	if (args->spin && args->count > 0) {
		struct rec *r = bpf_ringbuf_reserve(ring, 16, 0);

		if (!r)
			return 0;
		fill(r, args->first_seq + count, args->keys);
		for (int round = 0; round < 64; round++) {
			if (round >= args->spin)
				break;
			bpf_loop(1 << 23, spin_one, NULL, 0);
			if (released())
				break;
		}
		bpf_ringbuf_submit(r, 0);
	}
	return 0;
}

SEC("syscall")
int gen_small(struct gen_args *args)
{
	return generate(args, &test_ring, &test_ring_drops);
}

SEC("syscall")
int gen_big(struct gen_args *args)
{
	return generate(args, &big_ring, &big_ring_drops);
}

static long perf_one(__u64 i, struct gen_ctx *g)
{
	struct rec r = {};

	fill(&r, (__u32)i, 0);
	bpf_perf_event_output(g->tp_ctx, &test_perf, BPF_F_CURRENT_CPU, &r, 16);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpgid")
int perf_burst(struct trace_event_raw_sys_enter *ctx)
{
	struct gen_ctx g = { .tp_ctx = ctx };

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	bpf_loop((__u32)ctx->args[0], perf_one, &g, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
