// SPDX-License-Identifier: GPL-2.0
/* skb-drops: packets the kernel dropped (kfree_skb), by drop reason.
 *
 * The key is the kernel's own enum skb_drop_reason value, as it is: the kernel renumbers that
 * enum between versions, so the agent names each value from the running kernel's BTF (decoder
 * kernel_enum) instead of the program mapping names to numbers here, which cost a comparison
 * per known reason on every drop. Reasons of subsystems (mac80211, openvswitch) keep their
 * subsystem bits (the upper 16) and are shown as numbers.
 *
 * Exported as `network.packet.drops` by conf/conf.d/skb-drops.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} skb_drops SEC(".maps");

SEC("tp_btf/kfree_skb")
int BPF_PROG(count_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	__u32 key = reason;

	/* Not drops: consumed packets go to consume_skb, but be explicit about both. */
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_NOT_DROPPED_YET) ||
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return 0;
	percpu_add(&skb_drops, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
