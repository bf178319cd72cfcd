// SPDX-License-Identifier: GPL-2.0
/* Benchmark-only: the cost of otelbpf_exp_index() at scale 3 against exp2_slot() (log2), over
 * the same pseudo-random values, `rounds` times per BPF_PROG_TEST_RUN run (benchmarks/programs.py).
 * The two programs differ only in the index function, so their time difference is its cost. */
#include "vmlinux.h"
#include "otelbpf.h"

const volatile __u32 rounds = 1000000;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sink SEC(".maps");

struct bench_state {
	__u64 x;
	__s64 acc;
};

/* xorshift64: values of every magnitude, cheap and the same sequence for both programs. The
 * shift right by a value-dependent amount spreads magnitudes from 1 to 2^64. */
static __always_inline __u64 next_value(struct bench_state *s)
{
	s->x ^= s->x << 13;
	s->x ^= s->x >> 7;
	s->x ^= s->x << 17;
	return (s->x >> (s->x & 63)) | 1;
}

static long exp_round(__u64 i, void *ctx)
{
	struct bench_state *s = ctx;

	s->acc += otelbpf_exp_index(next_value(s), 3);
	return 0;
}

static long log2_round(__u64 i, void *ctx)
{
	struct bench_state *s = ctx;

	s->acc += exp2_slot(next_value(s));
	return 0;
}

/* The seed comes from the map, unknown to the verifier: with a constant seed it would follow
 * every value through every round of the loop instead of verifying the callback once. */
static __always_inline int run(void *round)
{
	__u32 zero = 0;
	__u64 *cell = bpf_map_lookup_elem(&sink, &zero);
	struct bench_state s = {};

	if (!cell)
		return 1;
	s.x = *cell | 88172645463325252ULL;
	bpf_loop(rounds, round, &s, 0);
	*cell = s.acc;
	return 0;
}

SEC("syscall")
int bench_exp_index(void *ctx)
{
	return run(exp_round);
}

SEC("syscall")
int bench_log2(void *ctx)
{
	return run(log2_round);
}

char LICENSE[] SEC("license") = "GPL";
