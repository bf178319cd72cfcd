// SPDX-License-Identifier: GPL-2.0
/* Test-only: one program per attach type. Those this test kernel cannot run (kprobe, fentry,
 * a tracepoint that does not exist) sit beside working ones, which must keep running.
 * Every counter only counts the test process (target_tgid). */
#include "vmlinux.h"
#include "otelbpf.h"

const volatile __u32 target_tgid = 0;

enum hit { HIT_TRACEPOINT, HIT_RAW_TP, HIT_TP_BTF, HIT_KPROBE, HIT_FENTRY, HIT_MISSING, HIT_PERF, HIT_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

/* Per-CPU perf_event samples: index 0 of each CPU's copy. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} perf_samples SEC(".maps");

static __always_inline int hit(__u32 what)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		map_add(&hits, &what, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpgid")
int on_tracepoint(void *ctx) { return hit(HIT_TRACEPOINT); }

SEC("raw_tp/sys_enter")
int on_raw_tp(void *ctx) { return hit(HIT_RAW_TP); }

SEC("tp_btf/sys_enter")
int BPF_PROG(on_tp_btf, struct pt_regs *regs, long id) { return hit(HIT_TP_BTF); }

SEC("kprobe/vfs_read")
int on_kprobe(void *ctx) { return hit(HIT_KPROBE); }

SEC("fentry/vfs_read")
int BPF_PROG(on_fentry) { return hit(HIT_FENTRY); }

SEC("tracepoint/syscalls/sys_enter_otelbpf_missing")
int on_missing(void *ctx) { return hit(HIT_MISSING); }

SEC("perf_event")
int on_perf_event(void *ctx)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&perf_samples, &key);

	if (n)
		*n += 1;
	return 0;
}

SEC("iter/bpf_map")
int dump_maps(struct bpf_iter__bpf_map *ctx)
{
	struct bpf_map *map = ctx->map;

	if (!map)
		return 0;
	BPF_SEQ_PRINTF(ctx->meta->seq, "%u %s\n", map->id, map->name);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
