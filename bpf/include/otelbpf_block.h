/* Block layer helpers shared by biolatency and bio-size: include after otelbpf.h. */
#ifndef OTELBPF_BLOCK_H
#define OTELBPF_BLOCK_H

/* The operation is the low REQ_OP_BITS (8 since Linux 4.10) of request->cmd_flags. */
#define REQ_OP_MASK ((1U << 8) - 1)

/* Operations as exported; the config's static_map decoder names them. Collapsed here so that
 * the label set does not depend on each kernel's REQ_OP_* numbering. */
enum bio_op {
	BIO_OP_READ = 0,
	BIO_OP_WRITE = 1,
	BIO_OP_FLUSH = 2,
	BIO_OP_DISCARD = 3,
	BIO_OP_OTHER = 4,
};

extern int LINUX_KERNEL_VERSION __kconfig;

/* Linux 5.11 dropped the leading request_queue argument of block_rq_issue (block_rq_complete
 * always had the request first). The branch is resolved at load time, so the verifier only
 * sees the one that matches the running kernel. */
static __always_inline struct request *issued_request(__u64 *ctx)
{
	if (LINUX_KERNEL_VERSION >= KERNEL_VERSION(5, 11, 0))
		return (struct request *)ctx[0];
	return (struct request *)ctx[1];
}

/* Kernels before 5.17 point to the disk from the request; later ones only from its queue. */
struct request___rq_disk {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

/* Direct loads through the tracepoints' typed pointers (tp_btf): no bpf_probe_read_kernel call
 * per field, which on these rare, cache-cold events was most of the programs' cost. A NULL or
 * faulting pointer reads as 0. */
static __always_inline __u32 request_dev(struct request *rq)
{
	struct request___rq_disk *old = (void *)rq;
	struct gendisk *disk;

	if (bpf_core_field_exists(old->rq_disk))
		disk = old->rq_disk;
	else
		disk = rq->q->disk;
	if (!disk)
		return 0;
	/* MKDEV(): the same encoding the block tracepoints print as "major,minor". */
	return (disk->major << 20) | disk->first_minor;
}

static __always_inline __u8 request_op(struct request *rq)
{
	switch (rq->cmd_flags & REQ_OP_MASK) {
	case REQ_OP_READ:
		return BIO_OP_READ;
	case REQ_OP_WRITE:
		return BIO_OP_WRITE;
	case REQ_OP_FLUSH:
		return BIO_OP_FLUSH;
	case REQ_OP_DISCARD:
		return BIO_OP_DISCARD;
	default:
		return BIO_OP_OTHER;
	}
}

#endif /* OTELBPF_BLOCK_H */
