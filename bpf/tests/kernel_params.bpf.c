// SPDX-License-Identifier: GPL-2.0
/* Test-only: load-time parameters of every supported kind, copied into `observed` when the
 * SEC("syscall") program is run with BPF_PROG_TEST_RUN, so a test sees what the program saw. */
#include "vmlinux.h"
#include "otelbpf.h"

const volatile __u32 p_u32 = 1;
const volatile __u64 p_u64 = 2;
const volatile __s32 p_s32 = -3;
const volatile __u8 p_u8 = 4;
const volatile __s64 p_s64 = -5;
const volatile bool p_bool = false;
const volatile char p_name[16] = "default";
typedef __u16 port_t;
const volatile port_t p_port = 80;

struct observed {
	__u32 u32;
	__s32 s32;
	__u64 u64;
	__s64 s64;
	__u8 u8;
	__u8 flag;
	__u16 port;
	char name[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct observed);
} observed SEC(".maps");

SEC("syscall")
int report_params(void *ctx)
{
	__u32 key = 0;
	struct observed *o = bpf_map_lookup_elem(&observed, &key);

	if (!o)
		return 1;
	o->u32 = p_u32;
	o->s32 = p_s32;
	o->u64 = p_u64;
	o->s64 = p_s64;
	o->u8 = p_u8;
	o->flag = p_bool;
	o->port = p_port;
	for (int i = 0; i < 16; i++)
		o->name[i] = p_name[i];
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
