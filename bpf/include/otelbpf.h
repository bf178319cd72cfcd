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

static __always_inline __u32 exp2_slot(__u64 v)
{
	if (v <= 1)
		return 0;
	/* ceil(log2(v)) == 64 - clz(v - 1) for v >= 2 */
	return 64 - __builtin_clzll(v - 1);
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
