// SPDX-License-Identifier: GPL-2.0
/* Test-only: one map of each readable type, filled on getpgid(key) by the test process.
 * The syscall's pid argument is the key, so the test decides which keys exist and how often
 * each is hit; per-CPU maps record which CPU the test thread ran on. */
#include "vmlinux.h"
#include "otelbpf.h"

const volatile __u32 target_tgid = 0;

/* 12 bytes: per-CPU copies are padded to 16 in the kernel's user buffer. */
struct triple {
	__u32 cpu;
	__u32 key;
	__u32 count;
};

#define COUNT_MAP(NAME, TYPE)                     \
	struct {                                  \
		__uint(type, TYPE);               \
		__uint(max_entries, 64);          \
		__type(key, __u32);               \
		__type(value, __u64);             \
	} NAME SEC(".maps")

COUNT_MAP(hash_counts, BPF_MAP_TYPE_HASH);
COUNT_MAP(array_counts, BPF_MAP_TYPE_ARRAY);
COUNT_MAP(percpu_hash_counts, BPF_MAP_TYPE_PERCPU_HASH);
COUNT_MAP(percpu_array_counts, BPF_MAP_TYPE_PERCPU_ARRAY);
COUNT_MAP(lru_hash_counts, BPF_MAP_TYPE_LRU_HASH);
COUNT_MAP(lru_percpu_hash_counts, BPF_MAP_TYPE_LRU_PERCPU_HASH);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct triple);
} percpu_triples SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpgid")
int fill_maps(struct trace_event_raw_sys_enter *ctx)
{
	__u32 key = (__u32)ctx->args[0];
	struct triple zero = {}, *t;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid || key >= 64)
		return 0;
	map_add(&hash_counts, &key, 1);
	map_add(&array_counts, &key, 1);
	/* Per-CPU values are private to this CPU: a plain add cannot race. */
	map_add(&percpu_hash_counts, &key, 1);
	map_add(&percpu_array_counts, &key, 1);
	map_add(&lru_hash_counts, &key, 1);
	map_add(&lru_percpu_hash_counts, &key, 1);

	t = bpf_map_lookup_elem(&percpu_triples, &key);
	if (!t) {
		bpf_map_update_elem(&percpu_triples, &key, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&percpu_triples, &key);
		if (!t)
			return 0;
	}
	t->cpu = bpf_get_smp_processor_id();
	t->key = key;
	t->count++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
