// SPDX-License-Identifier: GPL-2.0
/* Test-only: a ring buffer that a BPF_PROG_TEST_RUN of fill_ringbuf leaves exactly
 * FILL_RECORDS * 4096 bytes full (records are never consumed), for tests/health. */
#include "vmlinux.h"
#include "otelbpf.h"

#define FILL_RECORDS 3
/* 8-byte record header + 4088 payload bytes = 4096 bytes of ring per record. */
#define PAYLOAD (4096 - 8)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} health_rb SEC(".maps");

char payload[PAYLOAD];

SEC("syscall")
int fill_ringbuf(void *ctx)
{
	for (int i = 0; i < FILL_RECORDS; i++)
		bpf_ringbuf_output(&health_rb, payload, sizeof(payload), 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
