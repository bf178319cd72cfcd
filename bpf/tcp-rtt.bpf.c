// SPDX-License-Identifier: GPL-2.0
/* tcp-rtt: the smoothed round-trip time of TCP connections, sampled each time an established
 * connection processes an incoming segment (tcp_probe), as an exponential histogram computed in
 * the kernel (scale 3). Busy connections weigh more: it is a distribution over segments.
 *
 * Exported as `tcp.srtt` (us) by conf/conf.d/tcp-rtt.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

#define SCALE 3

OTELBPF_PORT_FILTER

OTELBPF_SAMPLING

struct rtt_key {
	__u16 family;
	__u16 pad;
	__s32 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct rtt_key);
	__type(value, __u64);
} tcp_rtt SEC(".maps");

SEC("tp_btf/tcp_probe")
int BPF_PROG(sample_rtt, struct sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct rtt_key key = {};

	if (!port_selected(sk))
		return 0;
	if (!tp || !sampled())
		return 0;
	key.family = sk->__sk_common.skc_family;
	/* srtt_us holds 8 times the smoothed RTT in microseconds. */
	increment_exp_histogram_weighted(&tcp_rtt, key, tp->srtt_us >> 3, SCALE, sample_every);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
