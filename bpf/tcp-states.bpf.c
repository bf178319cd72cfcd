// SPDX-License-Identifier: GPL-2.0
/* tcp-states: TCP state transitions (connections opened, accepted, closed, reset ...), by old
 * and new state.
 *
 * Exported as `tcp.state.transitions` by conf/conf.d/tcp-states.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

#define IPPROTO_TCP 6

OTELBPF_PORT_FILTER

/* A per-CPU array indexed by the state pair, not a hash map keyed by it: its lookup is a few
 * inlined instructions where a hash lookup costs ~50 ns on this hook (benchmarks/programs.py).
 * Index = from | to << 8, so the u32 key reads as { u8 from; u8 to; u8 pad[2] }; TCP states
 * are below 16 (TCP_MAX_STATES), a larger one would count as 15. The agent exports only the
 * pairs that counted something (skip_zero in conf/conf.d/tcp-states.toml). */
#define STATE_LIMIT 16

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STATE_LIMIT << 8);
	__type(key, __u32);
	__type(value, __u64);
} tcp_transitions SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(count_transition, struct sock *sk, int from, int to)
{
	__u32 key = array_index(from, STATE_LIMIT) | array_index(to, STATE_LIMIT) << 8;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (!port_selected(sk))
		return 0;
	percpu_add(&tcp_transitions, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
