// SPDX-License-Identifier: GPL-2.0
/* Test-only: a uprobe whose section names its target (libc's getpgid), so libbpf attaches it
 * with no further arguments; counts the test process's calls. */
#include "vmlinux.h"
#include "otelbpf.h"

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} uprobe_hits SEC(".maps");

SEC("uprobe/libc.so.6:getpgid")
int on_getpgid(void *ctx)
{
	__u32 key = 0;

	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		map_add(&uprobe_hits, &key, 1);
	return 0;
}

SEC("uretprobe/libc.so.6:getpgid")
int on_getpgid_return(void *ctx)
{
	__u32 key = 1;

	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		map_add(&uprobe_hits, &key, 1);
	return 0;
}

SEC("uprobe/libc.so.6:otelbpf_no_such_function")
int on_missing_symbol(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
