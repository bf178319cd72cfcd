// SPDX-License-Identifier: GPL-2.0
/* Test-only: one program per link kind whose target `otelbpf top` decodes from bpf_link_info.
 * None names its target in its section: the test attaches each to a uprobe, an interface or a
 * cgroup it creates, so it knows exactly what the kernel should report. Every program does
 * nothing and lets everything through. */
#include "vmlinux.h"
#include "otelbpf.h"

SEC("uprobe")
int top_uprobe(void *ctx)
{
	return 0;
}

SEC("uretprobe")
int top_uretprobe(void *ctx)
{
	return 0;
}

SEC("xdp")
int top_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* 1: let the packet through. */
SEC("cgroup_skb/ingress")
int top_cgroup_skb(struct __sk_buff *skb)
{
	return 1;
}

/* -1 (TCX_NEXT): on to the next program or the stack, as if nothing were attached. */
SEC("tc")
int top_tcx(struct __sk_buff *skb)
{
	return -1;
}

char LICENSE[] SEC("license") = "GPL";
