// SPDX-License-Identifier: GPL-2.0
/* Test-only: a pinnable counter map. kernel_pins_v2.bpf.c defines PIN_VALUE_STRUCT and includes this file: the
 * map keeps its name but changes value size, so an old pin must be replaced, not reused. */
#include "vmlinux.h"
#include "otelbpf.h"

const volatile __u32 target_tgid = 0;

#ifdef PIN_VALUE_STRUCT
struct pin_value {
	__u64 count;
	__u64 last_ns;
};
#define PIN_VALUE struct pin_value
#else
#define PIN_VALUE __u64
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, PIN_VALUE);
} pinned_counts SEC(".maps");

/* Never pinned: a fresh map on every load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} fresh_counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpgid")
int count_getpgid(struct trace_event_raw_sys_enter *ctx)
{
	__u32 key = (__u32)ctx->args[0];

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
#ifdef PIN_VALUE_STRUCT
	struct pin_value zero = {}, *v = bpf_map_lookup_elem(&pinned_counts, &key);

	if (!v) {
		bpf_map_update_elem(&pinned_counts, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&pinned_counts, &key);
		if (!v)
			return 0;
	}
	__sync_fetch_and_add(&v->count, 1);
	v->last_ns = bpf_ktime_get_ns();
#else
	map_add(&pinned_counts, &key, 1);
#endif
	map_add(&fresh_counts, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
