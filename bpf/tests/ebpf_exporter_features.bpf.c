// SPDX-License-Identifier: GPL-2.0
/* Test-only: every map kind an ebpf_exporter config can describe, filled on getpgid(v) by a
 * process whose command name is "ebpfxchild" (ebpf_exporter configs have no parameters, so the
 * filter is built in). The syscall's argument v is the observed value: the test chooses the
 * values, so it knows every count and sum. Map names are the metric names of
 * tests/ebpf_exporter/ebpfx.yaml. */
#include "vmlinux.h"
#include "otelbpf.h"

/* Set by the agent from /proc/kallsyms (`kaddrs:` in the YAML) before load; libbpf resolves the
 * typeless ksym from the same file on its own, so the two must agree. */
const volatile __u64 kaddr_schedule = 0;
extern const void schedule __ksym;

#define COUNTS(NAME, TYPE, KEY, N)        \
	struct {                          \
		__uint(type, TYPE);       \
		__uint(max_entries, N);   \
		__type(key, KEY);         \
		__type(value, __u64);     \
	} NAME SEC(".maps")

struct parity_slot {
	__u32 parity;
	__u32 bucket;
};

COUNTS(ebpfx_syscalls_total, BPF_MAP_TYPE_HASH, __u32, 1024);
COUNTS(ebpfx_percpu_cpu_total, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, 1);
COUNTS(ebpfx_percpu_mod_total, BPF_MAP_TYPE_PERCPU_HASH, __u32, 16);
COUNTS(ebpfx_value_exp2, BPF_MAP_TYPE_HASH, struct parity_slot, 64);
COUNTS(ebpfx_value_exp2zero, BPF_MAP_TYPE_HASH, __u32, 64);
COUNTS(ebpfx_value_linear, BPF_MAP_TYPE_ARRAY, __u32, 32);
COUNTS(ebpfx_value_fixed, BPF_MAP_TYPE_HASH, __u16, 16);
COUNTS(ebpfx_kaddr_total, BPF_MAP_TYPE_HASH, __u32, 4);

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} ebpfx_events_total SEC(".maps");

/* One span per observed value (tests/ebpf_exporter/ebpfxspans.yaml): ids derived from v, so the
 * test knows each span's trace, parent and own id; odd values have a parent, even ones are roots. */
struct span_record {
	__u64 trace_id[2];
	__u64 parent_span_id;
	__u64 span_id;
	__u64 start_ns;
	__u64 duration_ns;
	char name[16];
	__u32 value;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} ebpfx_spans SEC(".maps");

#define EXP2_MAX 16
#define LINEAR_MAX 20
#define LINEAR_STEP 10

static __always_inline bool is_test_child(void)
{
	static const char want[] = "ebpfxchild";
	char comm[16];

	bpf_get_current_comm(comm, sizeof(comm));
	for (int i = 0; i < sizeof(want); i++)
		if (comm[i] != want[i])
			return false;
	return true;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(count_syscalls, struct pt_regs *regs, long id)
{
	__u32 key = id;

	if (is_test_child())
		map_add(&ebpfx_syscalls_total, &key, 1);
	return 0;
}

/* ebpf_exporter's fixed histograms key a slot by its bound: the first of 10, 100, 1000, 10000
 * at or above v (clamped to the last); the sum sits at 10001. */
static __always_inline __u16 fixed_slot(__u64 v)
{
	if (v <= 10)
		return 10;
	if (v <= 100)
		return 100;
	if (v <= 1000)
		return 1000;
	return 10000;
}

SEC("tracepoint/syscalls/sys_enter_getpgid")
int observe_value(struct trace_event_raw_sys_enter *ctx)
{
	__u64 v = (__u64)ctx->args[0];
	__u32 zero = 0, slot, mod, sum_slot;
	struct parity_slot ps;
	__u16 fixed, fixed_sum = 10001;
	__u32 kaddr_ok = kaddr_schedule && kaddr_schedule == (__u64)&schedule;

	if (!is_test_child())
		return 0;
	map_add(&ebpfx_kaddr_total, &kaddr_ok, 1);

	map_add(&ebpfx_percpu_cpu_total, &zero, 1);
	mod = v % 4;
	map_add(&ebpfx_percpu_mod_total, &mod, 1);

	ps.parity = v & 1;
	ps.bucket = exp2_slot(v);
	if (ps.bucket > EXP2_MAX)
		ps.bucket = EXP2_MAX;
	map_add(&ebpfx_value_exp2, &ps, 1);
	ps.bucket = EXP2_MAX + 1;
	map_add(&ebpfx_value_exp2, &ps, v);

	slot = exp2zero_slot(v);
	if (slot > EXP2_MAX)
		slot = EXP2_MAX;
	map_add(&ebpfx_value_exp2zero, &slot, 1);
	sum_slot = EXP2_MAX + 1;
	map_add(&ebpfx_value_exp2zero, &sum_slot, v);

	slot = v / LINEAR_STEP;
	if (slot > LINEAR_MAX)
		slot = LINEAR_MAX;
	map_add(&ebpfx_value_linear, &slot, 1);
	sum_slot = LINEAR_MAX + 1;
	map_add(&ebpfx_value_linear, &sum_slot, v);

	fixed = fixed_slot(v);
	map_add(&ebpfx_value_fixed, &fixed, 1);
	map_add(&ebpfx_value_fixed, &fixed_sum, v);

	struct span_record *span = bpf_ringbuf_reserve(&ebpfx_spans, sizeof(*span), 0);
	if (span) {
		__builtin_memset(span, 0, sizeof(*span));
		span->trace_id[0] = v + 1;
		span->trace_id[1] = 0x0123456789abcdefULL;
		span->parent_span_id = (v & 1) ? v + 0x2000 : 0;
		span->span_id = v + 0x1000;
		span->start_ns = bpf_ktime_get_ns();
		span->duration_ns = v * 1000;
		__builtin_memcpy(span->name, "getpgid", 8);
		span->value = v;
		bpf_ringbuf_submit(span, 0);
	}

	mod = v % 3;
	bpf_perf_event_output(ctx, &ebpfx_events_total, BPF_F_CURRENT_CPU, &mod, sizeof(mod));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
