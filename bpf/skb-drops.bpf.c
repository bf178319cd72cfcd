// SPDX-License-Identifier: GPL-2.0
/* skb-drops: packets the kernel dropped (kfree_skb), by drop reason.
 *
 * Exported as `network.packet.drops` by conf/conf.d/skb-drops.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

struct drop_key {
	__u32 reason; /* otelbpf's own number for the reason, 0 when not in the list below */
	__u32 code;   /* the kernel's enum value when reason is 0, else 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct drop_key);
	__type(value, __u64);
} skb_drops SEC(".maps");

/* The kernel renumbers enum skb_drop_reason between versions (reasons are added in the middle),
 * so a raw value means different things on different kernels. Each name below is resolved to
 * the running kernel's value at load time (CO-RE), and a missing one never matches; the numbers
 * on the left are otelbpf's and never change (conf/conf.d/skb-drops.toml names them). */
#define REASON(id, name)                                                                           \
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_##name) &&            \
	    raw == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_##name))              \
		return id

static __always_inline __u32 stable_reason(__u32 raw)
{
	REASON(1, NOT_SPECIFIED);
	REASON(2, NO_SOCKET);
	REASON(3, SOCKET_CLOSE);
	REASON(4, SOCKET_FILTER);
	REASON(5, SOCKET_RCVBUFF);
	REASON(6, SOCKET_BACKLOG);
	REASON(7, PKT_TOO_SMALL);
	REASON(8, TCP_CSUM);
	REASON(9, UDP_CSUM);
	REASON(10, NETFILTER_DROP);
	REASON(11, OTHERHOST);
	REASON(12, IP_CSUM);
	REASON(13, IP_INHDR);
	REASON(14, IP_NOPROTO);
	REASON(15, IP_OUTNOROUTES);
	REASON(16, PROTO_MEM);
	REASON(17, TCP_LISTEN_OVERFLOW);
	REASON(18, TCP_FLAGS);
	REASON(19, TCP_ZEROWINDOW);
	REASON(20, TCP_OLD_DATA);
	REASON(21, TCP_OVERWINDOW);
	REASON(22, TCP_OFOMERGE);
	REASON(23, TCP_INVALID_SEQUENCE);
	REASON(24, TCP_RESET);
	REASON(25, TCP_CLOSE);
	REASON(26, NEIGH_FAILED);
	REASON(27, NEIGH_QUEUEFULL);
	REASON(28, QDISC_DROP);
	REASON(29, CPU_BACKLOG);
	REASON(30, FULL_RING);
	REASON(31, NOMEM);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(count_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct drop_key key = {};

	/* Not drops: consumed packets go to consume_skb, but be explicit about both. */
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_NOT_DROPPED_YET) ||
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return 0;
	key.reason = stable_reason(reason);
	if (!key.reason)
		key.code = reason;
	map_add(&skb_drops, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
