// SPDX-License-Identifier: GPL-2.0
/* tcp-retransmits: TCP segments retransmitted, by the connection's state (SYN_SENT: the peer
 * did not answer a connect; ESTABLISHED: data or ACK loss) and address family.
 *
 * Exported as `tcp.retransmits` by conf/conf.d/tcp-retransmits.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

OTELBPF_PORT_FILTER

/* A per-CPU array indexed by state and family, as in tcp-states: no entry to create on the
 * first retransmission, which runs from a timer with cold caches. Index = state | family << 8,
 * so the u32 key reads as { u8 state; u8 family; u8 pad[2] }. TCP states are below 16
 * (TCP_MAX_STATES), families here are 2 (AF_INET) and 10 (AF_INET6); a larger value of either
 * counts as 15. The agent exports only the slots that counted (skip_zero in the config). */
#define LIMIT 16

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LIMIT << 8);
	__type(key, __u32);
	__type(value, __u64);
} tcp_retransmits SEC(".maps");

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(count_retransmit, struct sock *sk)
{
	__u32 key;

	if (!port_selected(sk))
		return 0;
	key = array_index(sk->__sk_common.skc_state, LIMIT) |
	      array_index(sk->__sk_common.skc_family, LIMIT) << 8;
	percpu_add(&tcp_retransmits, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
