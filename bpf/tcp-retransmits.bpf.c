// SPDX-License-Identifier: GPL-2.0
/* tcp-retransmits: TCP segments retransmitted, by the connection's state (SYN_SENT: the peer
 * did not answer a connect; ESTABLISHED: data or ACK loss) and address family.
 *
 * Exported as `tcp.retransmits` by conf/conf.d/tcp-retransmits.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

OTELBPF_PORT_FILTER

struct retransmit_key {
	__u32 state;
	__u16 family; /* AF_INET 2, AF_INET6 10 */
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, struct retransmit_key);
	__type(value, __u64);
} tcp_retransmits SEC(".maps");

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(count_retransmit, struct sock *sk)
{
	struct retransmit_key key = {};

	if (!port_selected(sk))
		return 0;
	key.state = sk->__sk_common.skc_state;
	key.family = sk->__sk_common.skc_family;
	map_add(&tcp_retransmits, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
