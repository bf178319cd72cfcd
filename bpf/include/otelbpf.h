/* Shared helpers for otelbpf BPF programs: include after vmlinux.h. */
#ifndef OTELBPF_H
#define OTELBPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

/* Histogram slots follow ebpf_exporter's exp2 semantics: slot k counts values in (2^(k-1), 2^k],
 * slot 0 counts 0 and 1. That is ceil(log2(v)), so slot k maps exactly onto the OpenTelemetry
 * exponential bucket (2^(k-1), 2^k] at scale 0 with no observation crossing a boundary.
 * 64 slots cover every u64, so nothing is clamped unless the caller asks for a lower max. */
#define OTELBPF_EXP2_MAX_SLOT 64

/* floor(log2(v)) for v >= 1, by halving the search range. BPF has no count-leading-zeros
 * instruction and clang 14 (Debian 12) crashes compiling __builtin_clzll for the BPF target. */
static __always_inline __u32 floor_log2(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xffffffffULL) << 5;
	v >>= shift;
	r |= shift;
	shift = (v > 0xffff) << 4;
	v >>= shift;
	r |= shift;
	shift = (v > 0xff) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xf) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	return r | (v >> 1);
}

static __always_inline __u32 exp2_slot(__u64 v)
{
	if (v <= 1)
		return 0;
	/* ceil(log2(v)) == floor(log2(v - 1)) + 1 for v >= 2 */
	return floor_log2(v - 1) + 1;
}

/* exp2zero: slot 0 counts exactly zero, slot k >= 1 counts (2^(k-2), 2^(k-1)]. */
static __always_inline __u32 exp2zero_slot(__u64 v)
{
	return v == 0 ? 0 : exp2_slot(v) + 1;
}

/* The u64 value at `key`, created as 0 when missing; NULL only when the map is full. */
static __always_inline __u64 *map_slot(void *map, const void *key)
{
	__u64 zero = 0, *val;

	val = bpf_map_lookup_elem(map, key);
	if (val)
		return val;
	bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/* Add `inc` to the u64 value at `key`, creating the entry when missing. Safe on any CPU. */
static __always_inline void map_add(void *map, const void *key, __u64 inc)
{
	__u64 *val = map_slot(map, key);

	if (val)
		__sync_fetch_and_add(val, inc);
}

/* map_add() for a per-CPU map (PERCPU_ARRAY, PERCPU_HASH) written only by programs that cannot
 * interrupt one another on a CPU: a plain add into this CPU's copy, no locked instruction. A
 * tracing program runs with preemption off and never nested in itself on one CPU (the kernel
 * skips the nested run and counts a recursion miss), so no other add can land in between. */
static __always_inline void percpu_add(void *map, const void *key, __u64 inc)
{
	__u64 *val = map_slot(map, key);

	if (val)
		*val += inc;
}

/* `value` as an index into an array of `limit` slots: values past the end share the last slot. */
static __always_inline __u32 array_index(__u32 value, __u32 limit)
{
	return value < limit ? value : limit - 1;
}

/* A kernel pointer read from a struct field, as a plain number to hash, compare or use as a key.
 * Newer verifiers (Linux 6.18.44 here) type a pointer to anything but a struct (a function
 * pointer, a char *) as read-only untrusted memory and keep that type through arithmetic, so
 * hashing it and storing 4 bytes of the result is refused ("invalid size of register spill").
 * Negating twice leaves the value as it was and makes it a number: the verifier allows negating
 * a pointer in programs that may see addresses (CAP_PERFMON, which every tracing program needs),
 * and older verifiers already load such fields as numbers. Free, unlike bpf_probe_read_kernel()
 * (a helper call: timers measured 297-347 ns per run with it against 180-262 with this). */
static __always_inline __u64 otelbpf_address(__u64 pointer)
{
	asm volatile("%[p] = -%[p]; %[p] = -%[p]" : [p] "+r"(pointer));
	return pointer;
}

/* ---- OpenTelemetry exponential histograms, computed in the kernel ----------------------------
 * Bucket i at scale s covers (base^i, base^(i+1)], base = 2^(2^-s): i is the smallest integer
 * with value^(2^s) <= 2^(i+1). At scale 3 a bucket is ~9 % wide (log2 slots are 100 %).
 *
 * Integer only: with e = floor(log2 v) and the 64-bit mantissa m = v << (63 - e), the index at
 * scale 4 is 16e + (how many of 2^(k/16) * 2^63, k = 1..15, lie below m) - (v is 2^e). Each
 * threshold is irrational, so comparing m with its floor is exact; the constants below are
 * floor(2^(63 + k/16)). Scales 0..3 follow by an arithmetic shift: bucket i at scale s+1 lies
 * inside bucket i >> 1 at scale s (the OpenTelemetry downscale rule), so nothing is approximated.
 * Four comparisons along one path of a fixed tree: no loop, no table in memory. */
#define OTELBPF_EXP_MAX_SCALE 4
/* The bucket key that counts value == 0, and the one that holds the sum of values. */
#define OTELBPF_EXP_ZERO_KEY ((__s32)0x80000000)
#define OTELBPF_EXP_SUM_KEY ((__s32)0x7fffffff)

/* How many of floor(2^(63 + k/16)), k = 1..15, lie strictly below m (m has its top bit set). */
static __always_inline __u32 otelbpf_exp_sub16(__u64 m)
{
	if (m > 0xb504f333f9de6484ULL) { /* k = 8 */
		if (m > 0xd744fccad69d6af4ULL) { /* 12 */
			if (m > 0xeac0c6e7dd24392eULL) /* 14 */
				return 14 + (m > 0xf5257d152486cc2cULL);
			return 12 + (m > 0xe0ccdeec2a94e111ULL);
		}
		if (m > 0xc5672a115506daddULL) /* 10 */
			return 10 + (m > 0xce248c151f8480e3ULL);
		return 8 + (m > 0xbd08a39f580c36beULL);
	}
	if (m > 0x9837f0518db8a96fULL) { /* 4 */
		if (m > 0xa5fed6a9b15138eaULL) /* 6 */
			return 6 + (m > 0xad583eea42a14ac6ULL);
		return 4 + (m > 0x9ef5326091a111adULL);
	}
	if (m > 0x8b95c1e3ea8bd6e6ULL) /* 2 */
		return 2 + (m > 0x91c3d373ab11c336ULL);
	return m > 0x85aac367cc487b14ULL;
}

/* The OpenTelemetry exponential bucket index of value >= 1 at 0 <= scale <= 4 (larger scales
 * are treated as 4). Value 1 is -1 at every scale, value 2 is 2^scale - 1. */
static __always_inline __s32 otelbpf_exp_index(__u64 value, __u32 scale)
{
	__u32 e = floor_log2(value);
	__u64 m = value << (63 - e);
	__s32 index4 = (__s32)((e << 4) + otelbpf_exp_sub16(m)) - (m == (1ULL << 63));

	if (scale > OTELBPF_EXP_MAX_SCALE)
		scale = OTELBPF_EXP_MAX_SCALE;
	return index4 >> (OTELBPF_EXP_MAX_SCALE - scale);
}

/* Count `value` in an exponential histogram map: `key` is a struct lvalue whose `bucket` field
 * is an __s32 (the last label, decoder "int"); 0 counts at OTELBPF_EXP_ZERO_KEY and the running
 * sum of values sits at OTELBPF_EXP_SUM_KEY. Config: bucket_type = "exponential",
 * bucket_scale = scale. */
#define increment_exp_histogram(map, key, value, scale)                                            \
	increment_exp_histogram_weighted(map, key, value, scale, 1)

/* The same for an event that stands for `weight` events (sampling 1 in weight). */
#define increment_exp_histogram_weighted(map, key, value, scale, weight)                           \
	({                                                                                        \
		__u64 __value = (value), __weight = (weight);                                     \
		(key).bucket = __value ? otelbpf_exp_index(__value, scale) : OTELBPF_EXP_ZERO_KEY; \
		map_add(map, &(key), __weight);                                                   \
		(key).bucket = OTELBPF_EXP_SUM_KEY;                                               \
		map_add(map, &(key), __value * __weight);                                         \
	})

/* ---- Load-time process filters ------------------------------------------------------------
 * OTELBPF_TASK_FILTER declares two parameters (set from the config's [parameters] table) and
 * task_selected(), which a program calls first so that unselected tasks cost one comparison:
 *   target_tgid    only this process (thread group id in the initial PID namespace); 0: all
 *   target_cgroup  only tasks in this cgroup v2 (its id: the inode number of its directory,
 *                  `stat -c %i /sys/fs/cgroup/...`); 0: all */
#define OTELBPF_TASK_FILTER                                                                       \
	const volatile __u32 target_tgid = 0;                                                     \
	const volatile __u64 target_cgroup = 0;                                                   \
	static __always_inline bool task_selected(void)                                           \
	{                                                                                         \
		if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != target_tgid)             \
			return false;                                                             \
		return !target_cgroup || bpf_get_current_cgroup_id() == target_cgroup;            \
	}

/* OTELBPF_PORT_FILTER declares the parameter `target_port` and port_selected(sk): only sockets
 * with this local or remote port (host byte order); 0: all. The local port is read from
 * inet_sport, which stays set while the socket closes (skc_num is cleared when the port is
 * released, before the transition to CLOSE is traced). */
#define OTELBPF_PORT_FILTER                                                                       \
	const volatile __u16 target_port = 0;                                                     \
	static __always_inline bool port_selected(struct sock *sk)                               \
	{                                                                                         \
		return !target_port ||                                                            \
		       bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport)) == target_port || \
		       bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)) == target_port;        \
	}

/* ---- Sampling ----------------------------------------------------------------------------
 * OTELBPF_SAMPLING declares `sample_every` (parameter, 1 = every event) and sampled(), true for
 * every sample_every-th event on each CPU. A sampling program adds sample_every where it would
 * add 1 (and sample_every * value to a sum), so the exported numbers are already scaled back to
 * all events, in the metric's own unit; the rate itself is the parameter in the program's config.
 * The per-CPU tick is not atomic: a run that interrupts another on the same CPU between its
 * read and write of the tick (a softirq over a task, a preempted task) shares that tick, so one
 * such event is sampled or skipped with it; the tests see counts within one cycle per CPU. */
#define OTELBPF_SAMPLING                                                                          \
	const volatile __u32 sample_every = 1;                                                    \
	struct {                                                                                  \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                          \
		__uint(max_entries, 1);                                                           \
		__type(key, __u32);                                                               \
		__type(value, __u32);                                                             \
	} sample_tick SEC(".maps");                                                               \
	static __always_inline bool sampled(void)                                                 \
	{                                                                                         \
		__u32 zero = 0, *tick;                                                            \
		if (sample_every <= 1)                                                            \
			return true;                                                              \
		tick = bpf_map_lookup_elem(&sample_tick, &zero);                                  \
		if (!tick)                                                                        \
			return false;                                                             \
		if (++*tick < sample_every)                                                       \
			return false;                                                             \
		*tick = 0;                                                                        \
		return true;                                                                      \
	}

#endif /* OTELBPF_H */

/* ---- Streams: counting ring buffer reserve failures ------------------------------------------
 * bpf_ringbuf_reserve() fails when user space has fallen behind and the ring is full; the record
 * is then lost without a trace. Declare the ring with OTELBPF_RINGBUF(name, bytes): it also
 * declares a per-CPU array `name##_drops` (one u64) that OTELBPF_RINGBUF_RESERVE(name, type)
 * increments on every failed reservation. The agent reads `<map>_drops` and reports it as
 * otelbpf.stream.lost. Per-CPU, so the failure path never bounces a shared cache line (the add
 * stays atomic: another task may run the program on the same CPU if this one is preempted).
 *
 *   OTELBPF_RINGBUF(events, 1 << 20);
 *   struct event *e = OTELBPF_RINGBUF_RESERVE(events, struct event);
 *   if (!e)
 *           return 0;
 *   ...
 *   bpf_ringbuf_submit(e, 0);
 */
#ifndef OTELBPF_H_STREAMS
#define OTELBPF_H_STREAMS

#define OTELBPF_RINGBUF(name, bytes)                                                              \
	struct {                                                                                  \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                               \
		__uint(max_entries, bytes);                                                       \
	} name SEC(".maps");                                                                      \
	struct {                                                                                  \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                          \
		__uint(max_entries, 1);                                                           \
		__type(key, __u32);                                                               \
		__type(value, __u64);                                                             \
	} name##_drops SEC(".maps")

static __always_inline void otelbpf_count_drop(void *drops)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(drops, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Reserve sizeof(type) bytes in ring `name`; NULL (and one drop counted) when the ring is full. */
#define OTELBPF_RINGBUF_RESERVE(name, type)                                                       \
	({                                                                                        \
		type *__rec = bpf_ringbuf_reserve(&name, sizeof(type), 0);                        \
		if (!__rec)                                                                       \
			otelbpf_count_drop(&name##_drops);                                        \
		__rec;                                                                            \
	})

/* bpf_ringbuf_output() with the same drop counting, for variable-length records. */
#define OTELBPF_RINGBUF_OUTPUT(name, data, size)                                                  \
	({                                                                                        \
		long __err = bpf_ringbuf_output(&name, data, size, 0);                            \
		if (__err)                                                                        \
			otelbpf_count_drop(&name##_drops);                                        \
		__err;                                                                            \
	})

#endif /* OTELBPF_H_STREAMS */
/* ---- end of streams section ------------------------------------------------------------------ */
