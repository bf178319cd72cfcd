// SPDX-License-Identifier: GPL-2.0
/* bio-size: the size of block requests as they are issued to the device, per disk and
 * operation, as an exponential histogram computed in the kernel (scale 2: four buckets per
 * power of two, so 4 KiB, 8 KiB, ... each end a bucket and sizes in between are told apart).
 *
 * Exported as `disk.io.request.size` (By) by conf/conf.d/bio-size.toml. */
#include "vmlinux.h"
#include "otelbpf.h"
#include "otelbpf_block.h"

#define SCALE 2

struct size_key {
	__u32 dev;
	__u8 op;
	__u8 pad[3];
	__s32 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct size_key);
	__type(value, __u64);
} bio_size SEC(".maps");

SEC("tp_btf/block_rq_issue")
int bio_size_issue(__u64 *ctx)
{
	struct request *rq = issued_request(ctx);
	struct size_key key = {};

	key.dev = request_dev(rq);
	key.op = request_op(rq);
	increment_exp_histogram(&bio_size, key, rq->__data_len, SCALE);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
