// SPDX-License-Identifier: GPL-2.0
/* cachestat: page cache pages added (read from disk or newly written: cache misses) and
 * removed (evicted, truncated, dropped), per device. Hits need a hook on mark_page_accessed
 * (a kprobe), which this program does without: the miss and eviction rates are what the page
 * cache tracepoints show.
 *
 * Exported as `page_cache.pages` by conf/conf.d/cachestat.toml. */
#include "vmlinux.h"
#include "otelbpf.h"

OTELBPF_TASK_FILTER

enum cache_op {
	CACHE_ADDED = 0,
	CACHE_REMOVED = 1,
};

struct cache_key {
	__u32 dev; /* s_dev of the file's superblock: major << 20 | minor */
	__u32 op;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct cache_key);
	__type(value, __u64);
} page_cache_pages SEC(".maps");

/* The classic tracepoints: their record already has the device and the folio's order. */
static __always_inline void count_pages(struct trace_event_raw_mm_filemap_op_page_cache *ctx, __u32 op)
{
	struct cache_key key = { .dev = ctx->s_dev, .op = op };

	if (!task_selected())
		return;
	map_add(&page_cache_pages, &key, 1ULL << (ctx->order & 31));
}

SEC("tracepoint/filemap/mm_filemap_add_to_page_cache")
int cache_add(struct trace_event_raw_mm_filemap_op_page_cache *ctx)
{
	count_pages(ctx, CACHE_ADDED);
	return 0;
}

SEC("tracepoint/filemap/mm_filemap_delete_from_page_cache")
int cache_delete(struct trace_event_raw_mm_filemap_op_page_cache *ctx)
{
	count_pages(ctx, CACHE_REMOVED);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
