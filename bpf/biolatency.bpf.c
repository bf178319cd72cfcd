// SPDX-License-Identifier: GPL-2.0
/* biolatency: block device I/O latency, from the moment a request is issued to the driver
 * (block_rq_issue) until the device completes it (block_rq_complete), per disk and operation.
 *
 * Exported as the histogram `bio.latency` (microseconds) by conf/conf.d/biolatency.toml. */
#include "vmlinux.h"
#include "otelbpf.h"
#include "otelbpf_block.h"

/* Distinct requests: the kernel preallocates them per queue (queue depth x hardware queues) and
 * reuses them, so this bounds the requests of all devices together; past it, the least recently
 * issued request's entry is recycled. */
#define MAX_REQUESTS 10240

/* exp2 histogram over microseconds: slot k counts latencies in (2^(k-1), 2^k] us, slot 0 counts
 * 0 and 1 us. exp2_slot() returns at most 64, so no observation is ever clamped; the running
 * sum of latencies for a (disk, operation) pair sits just past the last slot (ebpf_exporter
 * convention, bucket_max + 1 in the config). */
#define BUCKET_MAX OTELBPF_EXP2_MAX_SLOT
#define BUCKET_SUM (BUCKET_MAX + 1)

/* Labels in key order, as conf/conf.d/biolatency.toml reads them:
 * dev (4 bytes, dev_t as the kernel encodes it: major << 20 | minor), op (1 byte + 3 padding),
 * bucket (8 bytes). The padding is explicit so that it is always zero. */
struct bio_key {
	__u32 dev;
	__u8 op;
	__u8 pad[3];
	__u64 bucket;
};

/* Issue time (bpf_ktime_get_ns) per request, keyed by the request's address, 0 once completed.
 * Requests are reused, so the entry of an address stays and is overwritten in place at each
 * issue: a lookup and a store, where inserting at issue and deleting at completion took the
 * bucket lock and recycled an element every time. LRU: the entries of requests freed for good
 * (a device removed, a scheduler changed) are recycled, never left to fill the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_REQUESTS);
	__type(key, __u64);
	__type(value, __u64);
} issued_at SEC(".maps");

/* Histogram slot counts and the latency sum, in microseconds. Block completions are orders of
 * magnitude rarer than system calls, so one shared map with atomic adds is cheap enough and
 * avoids multiplying the map's memory by the number of CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct bio_key);
	__type(value, __u64);
} bio_latency SEC(".maps");

SEC("tp_btf/block_rq_issue")
int biolat_issue(__u64 *ctx)
{
	__u64 rq = (__u64)issued_request(ctx);
	__u64 now = bpf_ktime_get_ns(), *issued;

	/* A requeued request is issued again: its latency counts from the last issue. */
	issued = bpf_map_lookup_elem(&issued_at, &rq);
	if (issued)
		*issued = now;
	else
		bpf_map_update_elem(&issued_at, &rq, &now, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(biolat_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	__u64 key_rq = (__u64)rq;
	struct bio_key key = {};
	__u64 *issued, now, us;

	/* Requests issued before we attached have no start time. A request completed in several
	 * parts fires this tracepoint once per part; the first part ends the measurement. */
	issued = bpf_map_lookup_elem(&issued_at, &key_rq);
	if (!issued || !*issued)
		return 0;
	/* Both times come from the monotonic clock, which is the same on every CPU. */
	now = bpf_ktime_get_ns();
	us = (now - *issued) / 1000;
	*issued = 0;

	key.dev = request_dev(rq);
	key.op = request_op(rq);
	key.bucket = exp2_slot(us);
	map_add(&bio_latency, &key, 1);

	key.bucket = BUCKET_SUM;
	map_add(&bio_latency, &key, us);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
