// SPDX-License-Identifier: GPL-2.0
/* tcp-states: TCP state transitions (connections opened, accepted, closed, reset ...), by old
 * and new state.
 *
 * Exported as `tcp.state.transitions` by conf/conf.d/tcp-states.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

#define IPPROTO_TCP 6

OTELBPF_PORT_FILTER

struct transition_key {
	__u32 from;
	__u32 to;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, struct transition_key);
	__type(value, __u64);
} tcp_transitions SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(count_transition, struct sock *sk, int from, int to)
{
	struct transition_key key = { .from = from, .to = to };

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (!port_selected(sk))
		return 0;
	map_add(&tcp_transitions, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
