// SPDX-License-Identifier: GPL-2.0
/* Benchmark-only: a counter map the size of a large host's worth of series, filled from user
 * space by benchmarks/flush.py, and one program on a rare attach point (the agent attaches what
 * an object holds; this one never has anything to count). */
#include "vmlinux.h"
#include "otelbpf.h"

struct series_key {
	__u32 tgid;
	__u32 syscall;
};

/* Not preallocated: the benchmark fills as many entries as it measures, up to 2^20. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct series_key);
	__type(value, __u64);
} series SEC(".maps");

SEC("tp_btf/task_rename")
int BPF_PROG(never_counts)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
