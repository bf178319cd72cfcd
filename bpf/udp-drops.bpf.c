// SPDX-License-Identifier: GPL-2.0
/* udp-drops: UDP datagrams dropped because the receiving socket could not take them (receive
 * buffer full, memory pressure), by local port and error.
 *
 * Exported as `udp.receive.drops` by conf/conf.d/udp-drops.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

struct udp_drop_key {
	__u16 port;  /* local port, host byte order */
	__u16 pad;
	__s32 error; /* negative errno: -ENOMEM receive buffer full, -ENOBUFS memory pressure */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct udp_drop_key);
	__type(value, __u64);
} udp_drops SEC(".maps");

SEC("tp_btf/udp_fail_queue_rcv_skb")
int BPF_PROG(count_udp_drop, int rc, struct sock *sk)
{
	struct udp_drop_key key = { .error = rc };

	/* A direct load through the tracepoint's typed pointer: no helper call (BPF_CORE_READ
	 * would be bpf_probe_read_kernel); a NULL or faulting pointer reads as 0. */
	key.port = sk->__sk_common.skc_num;
	percpu_add(&udp_drops, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
