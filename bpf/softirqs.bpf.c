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

/* Indexed by vector number: a per-CPU array, so counting is an inlined lookup and two adds into
 * one cache line. Two counters of the config read the two fields (value_offset 0 and 8). */
struct softirq_stats {
	__u64 time_ns;
	__u64 runs;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VECTORS);
	__type(key, __u32);
	__type(value, struct softirq_stats);
} softirq_stats SEC(".maps");

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
	struct softirq_stats *stats;

	/* An exit without its entry (attached in between) is not measured. */
	if (!at || !*at)
		return 0;
	/* Per-CPU, and softirqs do not nest on one CPU: plain adds. */
	stats = bpf_map_lookup_elem(&softirq_stats, &vec);
	if (stats) {
		stats->time_ns += bpf_ktime_get_ns() - *at;
		stats->runs += 1;
	}
	*at = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
