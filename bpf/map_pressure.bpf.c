// SPDX-License-Identifier: GPL-2.0
/* map_pressure: walks every BPF map on the host (iter/bpf_map) and writes one fixed-size record per
 * map. The agent reads the iterator fd in bulk and parses the records with numpy; see
 * otelbpf/health/map_pressure.py for the matching dtype. Keep both layouts in sync. */
#include "vmlinux.h"
#include "otelbpf.h"

#ifndef bpf_ksym_exists
/* libbpf < 1.2 lacks the macro; a __weak ksym resolves to 0 when the kernel does not have it. */
#define bpf_ksym_exists(sym) (!!(sym))
#endif

/* Kernel >= 6.6: sum of the per-CPU element counters. Only hash-table maps maintain them
 * (bpf_map_init_elem_count is called from htab_map_alloc alone); every other type reads 0. */
extern s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym __weak;

#define MAP_RECORD_HAS_COUNT 1
#define MAP_RECORD_HAS_RINGBUF 2

struct map_record {
	__u32 id;
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
	__u32 map_flags;
	__s64 elem_count;
	__u32 flags;		/* MAP_RECORD_HAS_COUNT when elem_count came from the kfunc, */
	__u32 _pad;		/* MAP_RECORD_HAS_RINGBUF when ringbuf_used is set */
	char name[16];
	/* Ring buffers: bytes produced and not yet consumed, read here because user space may
	 * only map another process's ring buffer after opening it by id (CAP_SYS_ADMIN). */
	__u64 ringbuf_used;
};

SEC("iter/bpf_map")
int map_pressure(struct bpf_iter__bpf_map *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct bpf_map *map = ctx->map;
	struct map_record rec = {};

	if (!map)
		return 0;

	rec.id = map->id;
	rec.type = map->map_type;
	rec.key_size = map->key_size;
	rec.value_size = map->value_size;
	rec.max_entries = map->max_entries;
	rec.map_flags = map->map_flags;
	bpf_probe_read_kernel_str(rec.name, sizeof(rec.name), map->name);
	if (bpf_ksym_exists(bpf_map_sum_elem_count)) {
		rec.elem_count = bpf_map_sum_elem_count(map);
		rec.flags = MAP_RECORD_HAS_COUNT;
	}
	if (map->map_type == BPF_MAP_TYPE_RINGBUF || map->map_type == BPF_MAP_TYPE_USER_RINGBUF) {
		/* struct bpf_ringbuf_map starts with its struct bpf_map (kernel/bpf/ringbuf.c). */
		struct bpf_ringbuf *rb = BPF_CORE_READ((struct bpf_ringbuf_map *)map, rb);
		/* Consumer first: it never passes the producer, so the difference is never negative. */
		__u64 consumer = BPF_CORE_READ(rb, consumer_pos);
		__u64 producer = BPF_CORE_READ(rb, producer_pos);

		if (rb) {
			rec.ringbuf_used = producer - consumer;
			rec.flags |= MAP_RECORD_HAS_RINGBUF;
		}
	}
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
