// SPDX-License-Identifier: GPL-2.0
/* timers: kernel timer expirations by callback function: timer_list timers and hrtimers (the
 * ones behind nanosleep, poll/epoll timeouts and the scheduler tick).
 *
 * Counting keyed by function in a hash map costs a hash update per expiration, on a hook that
 * mostly runs in a hard interrupt on a CPU just woken from idle, where every cache line the
 * update touches is cold. Instead each function gets a slot once: `timer_functions` (written only
 * when a function is first seen) holds the function that owns each slot, and the expirations are
 * counted in `timer_expirations` at the same index. An expiration then reads one line and adds to
 * another. Both are plain arrays, one copy for all CPUs: a per-CPU array finds this CPU's copy
 * through a table of pointers, one more line that is cold here (about 25 ns per run, measured);
 * the lines a CPU shares with another are touched by expirations of the same callback on both,
 * a few thousand times a second at most.
 *
 * Slots are found by hashing the function's address and probing PROBES slots from there; a slot
 * is claimed with a compare-and-swap, so two CPUs seeing a new function at once agree on one
 * slot. Slots are never given back while the maps exist. Slot 0 is never claimed: it counts the
 * expirations of functions that found all their slots taken (a host with thousands of distinct
 * timer callbacks), labelled "[other]" by the config.
 *
 * Exported as `timer.expirations` by conf/conf.d/timers.toml: the decoders "lookup" (slot ->
 * function address) and "ksym" (address -> name). The agent pins the two maps together and keeps
 * the counts only with the table that says what their slots mean. */
#include "vmlinux.h"
#include "otelbpf.h"

#define TIMER_SLOTS 1024 /* a power of two; hosts have a few hundred timer callbacks */
#define PROBES 8

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TIMER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} timer_functions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TIMER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} timer_expirations SEC(".maps");

/* The slots in use are 1..TIMER_SLOT_MASK (TIMER_SLOT_MASK + 1 a power of two, at most
 * TIMER_SLOTS). A constant rather than a load-time parameter: a parameter is read from memory at
 * every expiration, one more cache line that is mostly cold on this hook (about 15 ns per run,
 * measured). bpf/tests/timers_one_slot.bpf.c builds this file with one slot, so that a test can
 * make functions collide. */
#ifndef TIMER_SLOT_MASK
#define TIMER_SLOT_MASK (TIMER_SLOTS - 1)
#endif

static __always_inline __u32 slot_of(__u64 function)
{
	__u32 mask = TIMER_SLOT_MASK & (TIMER_SLOTS - 1);
	__u32 slot = (__u32)((function * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
	__u64 *owner;

	if (!function)
		return 0;
	for (int i = 0; i < PROBES; i++, slot = (slot + 1) & mask) {
		if (slot == 0)
			continue; /* slot 0 is the overflow */
		owner = bpf_map_lookup_elem(&timer_functions, &slot);
		if (!owner)
			return 0;
		if (*owner == function)
			return slot;
		if (*owner == 0) {
			__u64 seen = __sync_val_compare_and_swap(owner, 0, function);

			if (seen == 0 || seen == function)
				return slot;
		}
	}
	return 0;
}

/* A locked add: every CPU counts into the one copy, and hrtimer_expired (hard interrupt) can run
 * inside timer_expired (softirq) on the same CPU. */
static __always_inline void count_expiration(__u64 function)
{
	__u32 slot = slot_of(function);

	map_add(&timer_expirations, &slot, 1);
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(timer_expired, struct timer_list *timer)
{
	count_expiration(otelbpf_address((__u64)timer->function));
	return 0;
}

SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(hrtimer_expired, struct hrtimer *timer)
{
	count_expiration(otelbpf_address((__u64)timer->function));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
