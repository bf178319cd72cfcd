// SPDX-License-Identifier: GPL-2.0
/* page-faults: page faults by process (command name) and by where they happened: user space
 * or the kernel (e.g. copy_to_user into a page not yet mapped). x86 exception tracepoints
 * (arch/x86/mm/fault.c); other architectures have none, and the program does not attach there.
 *
 * Exported as `process.paging.faults` by conf/conf.d/page-faults.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

#define TASK_COMM_LEN 16

OTELBPF_TASK_FILTER

struct fault_key {
	char comm[TASK_COMM_LEN];
	__u32 kernel; /* 0 user, 1 kernel */
};

/* Command names are many, but max_entries bounds the map: a full map drops new names (and
 * otelbpf.map.fill shows it). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fault_key);
	__type(value, __u64);
} page_faults SEC(".maps");

static __always_inline void count_fault(__u32 kernel)
{
	struct fault_key key = { .kernel = kernel };

	struct task_struct *task;

	if (!task_selected())
		return;
	/* The name as two direct 8-byte loads from the current task, rather than the
	 * bpf_get_current_comm() call. Current kernels pad comm with NULs; where bytes remain
	 * after the NUL, they only make another map entry, and the agent adds up keys whose labels
	 * decode equal. */
	task = bpf_get_current_task_btf();
	__builtin_memcpy(key.comm, task->comm, sizeof(key.comm));
	/* map_add(), not percpu_add(): a kernel fault inside fault_user would run fault_kernel
	 * inside it on the same CPU. */
	map_add(&page_faults, &key, 1);
}

/* tp_btf rather than tracepoint/exceptions/...: no trace record is filled for us. */
SEC("tp_btf/page_fault_user")
int fault_user(void *ctx)
{
	count_fault(0);
	return 0;
}

SEC("tp_btf/page_fault_kernel")
int fault_kernel(void *ctx)
{
	count_fault(1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
