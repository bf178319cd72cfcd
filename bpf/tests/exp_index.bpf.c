// SPDX-License-Identifier: GPL-2.0
/* Test-only: otelbpf_exp_index() over a batch of values, run with BPF_PROG_TEST_RUN, so the
 * test compares the kernel's own results with the exact definition. It also runs
 * increment_exp_histogram() once per value into `hist`, so the map layout is checked too. */
#include "vmlinux.h"
#include "otelbpf.h"

#define BATCH 1024

struct batch {
	__u32 scale;
	__u32 n;
	__u64 values[BATCH];
	__s32 index[BATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct batch);
} batch SEC(".maps");

struct hist_key {
	__u32 series;
	__s32 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct hist_key);
	__type(value, __u64);
} hist SEC(".maps");

/* 1: record into `hist` as well (series 7). */
const volatile __u32 record = 0;

/* bpf_loop hands the callback a pointer to the stack, so the map value travels inside it. */
struct loop_ctx {
	struct batch *b;
};

static long index_one(__u64 i, void *ctx)
{
	struct batch *b = ((struct loop_ctx *)ctx)->b;
	struct hist_key key = { .series = 7 };
	__u64 v;

	if (i >= BATCH)
		return 1;
	v = b->values[i];
	b->index[i] = v ? otelbpf_exp_index(v, b->scale) : OTELBPF_EXP_ZERO_KEY;
	if (record)
		increment_exp_histogram(&hist, key, v, b->scale);
	return 0;
}

SEC("syscall")
int exp_index_batch(void *ctx)
{
	__u32 zero = 0;
	struct loop_ctx lc = { .b = bpf_map_lookup_elem(&batch, &zero) };

	if (!lc.b)
		return 1;
	bpf_loop(lc.b->n < BATCH ? lc.b->n : BATCH, index_one, &lc, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
