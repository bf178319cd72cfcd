// SPDX-License-Identifier: GPL-2.0
/* Benchmark-only: programs that do nothing, on the attach points of the library's busiest
 * programs. Their average run time under BPF_ENABLE_STATS is the floor every program pays here
 * (the statistics' own clock reads and the call), which benchmarks/programs.py reports beside
 * the real programs. */
#include "vmlinux.h"
#include "otelbpf.h"

SEC("raw_tp/sys_enter")
int floor_raw_tp(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_switch")
int floor_tp_btf(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
