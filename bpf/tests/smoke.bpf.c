// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include "otelbpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} smoke_calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int smoke(void *ctx)
{
	__u32 key = 0;
	map_add(&smoke_calls, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
