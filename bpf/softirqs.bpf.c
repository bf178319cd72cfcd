// SPDX-License-Identifier: GPL-2.0
/* softirqs: time spent in each softirq vector and how many times it ran, per vector.
 *
 * Exported as `softirq.time` (ns) and `softirq.runs` by conf/conf.d/softirqs.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

/* When the softirq running on each CPU started (softirqs do not nest on one CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} started_at SEC(".maps");

#define VECTORS 10 /* NR_SOFTIRQS since Linux 4.1 */

/* Indexed by vector number: per-CPU arrays, so counting is an inlined lookup and an add. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VECTORS);
	__type(key, __u32);
	__type(value, __u64);
} softirq_time SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VECTORS);
	__type(key, __u32);
	__type(value, __u64);
} softirq_runs SEC(".maps");

SEC("tp_btf/softirq_entry")
int BPF_PROG(softirq_entry, unsigned int vec)
{
	__u32 zero = 0;
	__u64 *at = bpf_map_lookup_elem(&started_at, &zero);

	if (at)
		*at = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(softirq_exit, unsigned int vec)
{
	__u32 zero = 0;
	__u64 *at = bpf_map_lookup_elem(&started_at, &zero);

	/* An exit without its entry (attached in between) is not measured. */
	if (!at || !*at)
		return 0;
	percpu_add(&softirq_time, &vec, bpf_ktime_get_ns() - *at);
	percpu_add(&softirq_runs, &vec, 1);
	*at = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
