// SPDX-License-Identifier: GPL-2.0
/* Test-only: the sections ebpf_exporter attaches itself, named the way its configs name them.
 * perf_event/type=1,config=0,frequency=N is PERF_TYPE_SOFTWARE / PERF_COUNT_SW_CPU_CLOCK sampled N
 * times a second on every CPU; xdp/lo runs on every packet the loopback interface receives;
 * usdt//usr/bin/python3:python:import__find__load__start fires in every python3 loading a module. */
#include "vmlinux.h"
#include "otelbpf.h"
#include <bpf/bpf_endian.h>
#include <bpf/usdt.bpf.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cpu_clock_samples_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} xdp_lo_packets_total SEC(".maps");

SEC("perf_event/type=1,config=0,frequency=997")
int count_cpu_clock(struct bpf_perf_event_data *ctx)
{
	__u32 zero = 0;

	map_add(&cpu_clock_samples_total, &zero, 1);
	return 0;
}

/* PERF_TYPE_HARDWARE / PERF_COUNT_HW_CPU_CYCLES: needs a hardware PMU, which VMs often lack. */
SEC("perf_event/type=0,config=0,frequency=99")
int count_cycles(struct bpf_perf_event_data *ctx)
{
	return 0;
}

/* Counts UDP packets to port 9435 (ebpf_exporter's own port, unlikely to see other traffic) by
 * their first payload byte; every packet passes. */
SEC("xdp/lo")
int count_lo_packets(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u8 *payload = (void *)(udp + 1);
	__u32 key;

	if ((void *)(payload + 1) > end || eth->h_proto != bpf_htons(0x0800) || ip->ihl != 5 ||
	    ip->protocol != 17 || udp->dest != bpf_htons(9435))
		return XDP_PASS;
	key = *payload;
	map_add(&xdp_lo_packets_total, &key, 1);
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} python_imports_total SEC(".maps");

SEC("usdt//usr/bin/python3:python:import__find__load__start")
int BPF_USDT(count_python_imports)
{
	__u32 zero = 0;

	map_add(&python_imports_total, &zero, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
