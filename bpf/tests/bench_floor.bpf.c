// SPDX-License-Identifier: GPL-2.0
/* Benchmark-only: programs that do nothing, one per attach point of the library, of the same
 * kind (tp_btf, raw_tp or tracepoint) as the library's program there. benchmarks/programs.py
 * attaches a program's empty counterparts alone, under the program's own workload: their average
 * run time under BPF_ENABLE_STATS is what any program costs on those hooks (the statistics' own
 * clock reads, the call, the hook's cache misses), and the program's own cost is measured above it.
 * Names: floor_<hook> is tp_btf, floor_raw_<hook> raw_tp, floor_tp_<hook> a classic tracepoint.
 * clock_<hook>, hash_<hook> and array_<hook> (below) do only the one step that a program doing
 * some job cannot do without (benchmarks/programs.py, LEAST_WORK). */
#include "vmlinux.h"
#include "otelbpf.h"

#define FLOOR(kind, name, hook)                                                                    \
	SEC(#kind "/" #hook)                                                                       \
	int name(void *ctx)                                                                        \
	{                                                                                          \
		return 0;                                                                          \
	}

FLOOR(raw_tp, floor_raw_sys_enter, sys_enter)
FLOOR(raw_tp, floor_raw_sys_exit, sys_exit)
FLOOR(tp_btf, floor_sched_switch, sched_switch)
FLOOR(tp_btf, floor_sched_wakeup, sched_wakeup)
FLOOR(tp_btf, floor_sched_wakeup_new, sched_wakeup_new)
FLOOR(tp_btf, floor_softirq_raise, softirq_raise)
FLOOR(tp_btf, floor_softirq_entry, softirq_entry)
FLOOR(tp_btf, floor_softirq_exit, softirq_exit)
FLOOR(tp_btf, floor_irq_handler_entry, irq_handler_entry)
FLOOR(tp_btf, floor_irq_handler_exit, irq_handler_exit)
FLOOR(tp_btf, floor_timer_expire_entry, timer_expire_entry)
FLOOR(tp_btf, floor_hrtimer_expire_entry, hrtimer_expire_entry)
FLOOR(tp_btf, floor_kfree_skb, kfree_skb)
FLOOR(tp_btf, floor_udp_fail_queue_rcv_skb, udp_fail_queue_rcv_skb)
FLOOR(tp_btf, floor_page_fault_user, page_fault_user)
FLOOR(tp_btf, floor_page_fault_kernel, page_fault_kernel)
FLOOR(tp_btf, floor_block_rq_issue, block_rq_issue)
FLOOR(tp_btf, floor_block_rq_complete, block_rq_complete)
FLOOR(tp_btf, floor_tcp_probe, tcp_probe)
FLOOR(tp_btf, floor_inet_sock_set_state, inet_sock_set_state)
FLOOR(tp_btf, floor_tcp_retransmit_skb, tcp_retransmit_skb)
FLOOR(tp_btf, floor_mark_victim, mark_victim)
FLOOR(tracepoint/filemap, floor_tp_mm_filemap_add_to_page_cache, mm_filemap_add_to_page_cache)
FLOOR(tracepoint/filemap, floor_tp_mm_filemap_delete_from_page_cache, mm_filemap_delete_from_page_cache)
FLOOR(tracepoint/sched, floor_tp_sched_process_exec, sched_process_exec)
FLOOR(tracepoint/signal, floor_tp_signal_generate, signal_generate)

/* The reading is kept in a register that an empty asm statement "uses": nothing is stored, so no
 * cache line is written that a real program would not write. */
#define READ_CLOCK() ({ __u64 t = bpf_ktime_get_ns(); asm volatile("" : : "r"(t)); })

/* One clock read and nothing else, on the hook of floor_raw_sys_enter: the difference between the
 * two is what bpf_ktime_get_ns() costs a program here. */
SEC("raw_tp/sys_enter")
int clock_raw_sys_enter(void *ctx)
{
	READ_CLOCK();
	return 0;
}

/* clock_<hook>: one clock read and nothing else, on the hooks of the programs that time an
 * interval with two reads (entry and exit): the least such a program costs per run there. */
#define CLOCK_FLOOR(hook)                                                                          \
	SEC("tp_btf/" #hook)                                                                       \
	int clock_##hook(void *ctx)                                                                \
	{                                                                                          \
		READ_CLOCK();                                                                      \
		return 0;                                                                          \
	}

CLOCK_FLOOR(softirq_entry)
CLOCK_FLOOR(softirq_exit)
CLOCK_FLOOR(irq_handler_entry)
CLOCK_FLOOR(irq_handler_exit)

/* hash_<hook>: one count added in a per-CPU hash map (map_add, as the library's counters do)
 * and nothing else, on the hooks of the programs keyed by something a hash map must hold (a
 * drop reason, a port, a command name, a function): the least such a program costs per run
 * there, with the caches the hook's own work leaves. Each hook counts under its own key. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} floor_hash SEC(".maps");

#define HASH_FLOOR(hook, id)                                                                       \
	SEC("tp_btf/" #hook)                                                                       \
	int hash_##hook(void *ctx)                                                                 \
	{                                                                                          \
		__u32 key = id;                                                                    \
		map_add(&floor_hash, &key, 1);                                                     \
		return 0;                                                                          \
	}

HASH_FLOOR(kfree_skb, 1)
HASH_FLOOR(udp_fail_queue_rcv_skb, 2)
HASH_FLOOR(page_fault_user, 3)
HASH_FLOOR(block_rq_issue, 7)
HASH_FLOOR(sched_switch, 8)

/* array_<hook>: one count added in an array at a fixed index (a plain array, reached without the
 * table of pointers a per-CPU one goes through; a plain add) and nothing else: the least a
 * counting program costs on a hook when it needs no hash. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} floor_array SEC(".maps");

#define ARRAY_FLOOR(hook, id)                                                                      \
	SEC("tp_btf/" #hook)                                                                       \
	int array_##hook(void *ctx)                                                                \
	{                                                                                          \
		__u32 key = id;                                                                    \
		__u64 *slot = bpf_map_lookup_elem(&floor_array, &key);                             \
		if (slot)                                                                          \
			*slot += 1;                                                                \
		return 0;                                                                          \
	}

ARRAY_FLOOR(timer_expire_entry, 5)
ARRAY_FLOOR(hrtimer_expire_entry, 6)

char LICENSE[] SEC("license") = "GPL";
