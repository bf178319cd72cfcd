// SPDX-License-Identifier: GPL-2.0
/* softirq-latency: how long a raised softirq waits until it runs, per vector (softirq_raise →
 * softirq_entry on the same CPU), as an exponential histogram computed in the kernel.
 *
 * Exported as `softirq.latency` (ns) by conf/conf.d/softirq-latency.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

#define SCALE 3
#define VECTORS 16 /* NR_SOFTIRQS is 10; a power of two keeps the index check one AND */

/* Per CPU, when each vector was first raised since it last ran (0: not pending). */
struct raised {
	__u64 at[VECTORS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct raised);
} raised_at SEC(".maps");

struct latency_key {
	__u32 vec;
	__s32 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2048);
	__type(key, struct latency_key);
	__type(value, __u64);
} softirq_latency SEC(".maps");

SEC("tp_btf/softirq_raise")
int BPF_PROG(softirq_raise, unsigned int vec)
{
	__u32 zero = 0;
	struct raised *r = bpf_map_lookup_elem(&raised_at, &zero);

	/* Raising a pending vector again does not restart its wait. */
	if (r && !r->at[vec & (VECTORS - 1)])
		r->at[vec & (VECTORS - 1)] = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(softirq_run, unsigned int vec)
{
	__u32 zero = 0;
	struct raised *r = bpf_map_lookup_elem(&raised_at, &zero);
	struct latency_key key = { .vec = vec };
	__u64 at;

	if (!r)
		return 0;
	at = r->at[vec & (VECTORS - 1)];
	if (!at)
		return 0;
	r->at[vec & (VECTORS - 1)] = 0;
	increment_exp_histogram(&softirq_latency, key, bpf_ktime_get_ns() - at, SCALE);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
