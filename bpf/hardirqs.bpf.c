// SPDX-License-Identifier: GPL-2.0
/* hardirqs: time spent in each hardware interrupt's handlers and how many times they ran, by
 * IRQ number. The agent names each IRQ's handlers as /proc/interrupts does (decoder "irq"),
 * so the handler's name is not copied out of the kernel on every interrupt. A shared line runs
 * all its handlers per interrupt, each traced: its runs count every handler run. Interrupts
 * handled without an irqaction (the local APIC timer, IPIs) have no such tracepoint and are not
 * counted.
 *
 * Exported as `irq.handler.time` (s) and `irq.handler.runs` by conf/conf.d/hardirqs.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

/* Counts are kept in an array indexed by IRQ number: no hash to compute and fewer cache lines to
 * touch than a hash map, on a hook that often runs on a CPU just woken from idle. One copy for all
 * CPUs, not a per-CPU array: that reaches this CPU's copy through a table of pointers, one more
 * line that is cold here (about 12 ns per run, measured). One IRQ's handlers run on one CPU at a
 * time, so its line seldom moves between CPUs; the adds are locked all the same, for the per-CPU
 * interrupts some architectures trace here (one IRQ number, every CPU at once).
 *
 * IRQ numbers are allocated lowest first, so they stay below the number of interrupts the host
 * has; those from IRQ_SLOTS - 1 up (hosts with thousands of interrupts) share the last slot: its
 * irq label reads "2047+" and its handler label names IRQ 2047's handlers. */
#define IRQ_SLOTS 2048

/* When the handler running on each CPU started (handlers of one CPU do not nest). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} started_at SEC(".maps");

/* The time and the runs of one IRQ side by side: the exit adds both through one lookup, into one
 * cache line (two maps cost a lookup and a cold line more). Two counters of the config read the
 * two fields (value_offset 0 and 8). */
struct irq_stats {
	__u64 time_ns;
	__u64 runs;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IRQ_SLOTS);
	__type(key, __u32);
	__type(value, struct irq_stats);
} irq_stats SEC(".maps");

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(irq_entry, int irq, struct irqaction *action)
{
	__u32 zero = 0;
	__u64 *at = bpf_map_lookup_elem(&started_at, &zero);

	if (at)
		*at = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(irq_exit, int irq, struct irqaction *action, int ret)
{
	__u32 zero = 0;
	__u64 *at = bpf_map_lookup_elem(&started_at, &zero);
	__u32 key = array_index(irq, IRQ_SLOTS);
	struct irq_stats *stats;

	if (!at || !*at)
		return 0;
	stats = bpf_map_lookup_elem(&irq_stats, &key);
	if (stats) {
		__sync_fetch_and_add(&stats->time_ns, bpf_ktime_get_ns() - *at);
		__sync_fetch_and_add(&stats->runs, 1);
	}
	*at = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
