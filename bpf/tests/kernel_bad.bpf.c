// SPDX-License-Identifier: GPL-2.0
/* Test-only: compiles, but the verifier rejects `broken` (it dereferences a map lookup result
 * without the NULL check). `fine` is a valid program in the same object. */
#include "vmlinux.h"
#include "otelbpf.h"

struct {
	/* A hash: recent verifiers know a constant in-bounds array lookup is never NULL. */
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpgid")
int broken(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&values, &key);

	return *v;
}

#ifndef ONLY_BROKEN
SEC("tracepoint/syscalls/sys_enter_getpgid")
int fine(void *ctx)
{
	__u32 key = 0;

	map_add(&values, &key, 1);
	return 0;
}
#endif

char LICENSE[] SEC("license") = "GPL";
