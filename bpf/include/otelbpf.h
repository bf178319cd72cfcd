/* Shared helpers for otelbpf BPF programs: include after vmlinux.h. */
#ifndef OTELBPF_H
#define OTELBPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* Histogram slots follow ebpf_exporter's exp2 semantics: slot k counts values in (2^(k-1), 2^k],
 * slot 0 counts 0 and 1. That is ceil(log2(v)), so slot k maps exactly onto the OpenTelemetry
 * exponential bucket (2^(k-1), 2^k] at scale 0 with no observation crossing a boundary.
 * 64 slots cover every u64, so nothing is clamped unless the caller asks for a lower max. */
#define OTELBPF_EXP2_MAX_SLOT 64

/* floor(log2(v)) for v >= 1, by halving the search range. BPF has no count-leading-zeros
 * instruction and clang 14 (Debian 12) crashes compiling __builtin_clzll for the BPF target. */
static __always_inline __u32 floor_log2(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xffffffffULL) << 5;
	v >>= shift;
	r |= shift;
	shift = (v > 0xffff) << 4;
	v >>= shift;
	r |= shift;
	shift = (v > 0xff) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xf) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	return r | (v >> 1);
}

static __always_inline __u32 exp2_slot(__u64 v)
{
	if (v <= 1)
		return 0;
	/* ceil(log2(v)) == floor(log2(v - 1)) + 1 for v >= 2 */
	return floor_log2(v - 1) + 1;
}

/* exp2zero: slot 0 counts exactly zero, slot k >= 1 counts (2^(k-2), 2^(k-1)]. */
static __always_inline __u32 exp2zero_slot(__u64 v)
{
	return v == 0 ? 0 : exp2_slot(v) + 1;
}

/* Add `inc` to the u64 value at `key`, creating the entry when missing. Safe on any CPU. */
static __always_inline void map_add(void *map, const void *key, __u64 inc)
{
	__u64 zero = 0, *val;

	val = bpf_map_lookup_elem(map, key);
	if (!val) {
		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		val = bpf_map_lookup_elem(map, key);
		if (!val)
			return;
	}
	__sync_fetch_and_add(val, inc);
}

#endif /* OTELBPF_H */

/* ---- Streams: counting ring buffer reserve failures ------------------------------------------
 * bpf_ringbuf_reserve() fails when user space has fallen behind and the ring is full; the record
 * is then lost without a trace. Declare the ring with OTELBPF_RINGBUF(name, bytes): it also
 * declares a per-CPU array `name##_drops` (one u64) that OTELBPF_RINGBUF_RESERVE(name, type)
 * increments on every failed reservation. The agent reads `<map>_drops` and reports it as
 * otelbpf.stream.lost. Per-CPU, so the failure path never bounces a shared cache line (the add
 * stays atomic: another task may run the program on the same CPU if this one is preempted).
 *
 *   OTELBPF_RINGBUF(events, 1 << 20);
 *   struct event *e = OTELBPF_RINGBUF_RESERVE(events, struct event);
 *   if (!e)
 *           return 0;
 *   ...
 *   bpf_ringbuf_submit(e, 0);
 */
#ifndef OTELBPF_H_STREAMS
#define OTELBPF_H_STREAMS

#define OTELBPF_RINGBUF(name, bytes)                                                              \
	struct {                                                                                  \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                               \
		__uint(max_entries, bytes);                                                       \
	} name SEC(".maps");                                                                      \
	struct {                                                                                  \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                          \
		__uint(max_entries, 1);                                                           \
		__type(key, __u32);                                                               \
		__type(value, __u64);                                                             \
	} name##_drops SEC(".maps")

static __always_inline void otelbpf_count_drop(void *drops)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(drops, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Reserve sizeof(type) bytes in ring `name`; NULL (and one drop counted) when the ring is full. */
#define OTELBPF_RINGBUF_RESERVE(name, type)                                                       \
	({                                                                                        \
		type *__rec = bpf_ringbuf_reserve(&name, sizeof(type), 0);                        \
		if (!__rec)                                                                       \
			otelbpf_count_drop(&name##_drops);                                        \
		__rec;                                                                            \
	})

/* bpf_ringbuf_output() with the same drop counting, for variable-length records. */
#define OTELBPF_RINGBUF_OUTPUT(name, data, size)                                                  \
	({                                                                                        \
		long __err = bpf_ringbuf_output(&name, data, size, 0);                            \
		if (__err)                                                                        \
			otelbpf_count_drop(&name##_drops);                                        \
		__err;                                                                            \
	})

#endif /* OTELBPF_H_STREAMS */
/* ---- end of streams section ------------------------------------------------------------------ */
