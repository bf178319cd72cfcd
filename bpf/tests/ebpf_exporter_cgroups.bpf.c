// SPDX-License-Identifier: GPL-2.0
/* Test-only: ebpf_exporter's cgroup_id_map in both layouts. On getpgid by a process named
 * "cgxchild", count the call by its cgroup and by whether user space put that cgroup in the
 * HASH map (keyed by cgroup id) and in the CGRP_STORAGE map (keyed by cgroup). Each YAML of
 * tests/ebpf_exporter/cgx*.yaml has user space fill one of the two. */
#include "vmlinux.h"
#include "otelbpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} cgroup_id_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} cgroup_id_storage SEC(".maps");

struct call_key {
	__u64 cgroup_id;
	__u32 in_hash;
	__u32 in_storage;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct call_key);
	__type(value, __u64);
} cgx_calls_total SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(count_by_cgroup, struct pt_regs *regs, long id)
{
	static const char want[] = "cgxchild";
	struct task_struct *task = bpf_get_current_task_btf();
	struct call_key key = {};
	char comm[16];

	if (id != 121 && id != 155) /* getpgid on x86_64 / arm64 */
		return 0;
	bpf_get_current_comm(comm, sizeof(comm));
	for (int i = 0; i < sizeof(want); i++)
		if (comm[i] != want[i])
			return 0;
	key.cgroup_id = bpf_get_current_cgroup_id();
	key.in_hash = bpf_map_lookup_elem(&cgroup_id_hash, &key.cgroup_id) != NULL;
	key.in_storage = bpf_cgrp_storage_get(&cgroup_id_storage, task->cgroups->dfl_cgrp, 0, 0) != NULL;
	map_add(&cgx_calls_total, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
