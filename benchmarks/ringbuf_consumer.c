// SPDX-License-Identifier: Apache-2.0
/* The ceiling for benchmarks/streams.py: libbpf's own ring buffer consumer in C, doing the
 * cheapest reasonable aggregation per record (count, sum and a base-2 bucket per label value).
 *
 * Built at benchmark time as a shared library and driven from Python through ctypes, so it
 * drains the very same ring buffer map as the Python paths:
 *   gcc -O2 -shared -fPIC -o ringbuf_consumer.so ringbuf_consumer.c -lbpf
 */
#include <stdint.h>
#include <stdlib.h>
#include <bpf/libbpf.h>

#define KEYS 100
#define SLOTS 65

struct bench_event {
	uint32_t key;
	uint32_t pad;
	uint64_t value;
};

struct consumer {
	struct ring_buffer *rb;
	uint64_t events;
	uint64_t sum[KEYS];
	uint64_t buckets[KEYS][SLOTS]; /* slot k: values in (2^(k-1), 2^k], slot 0: 0 and 1 */
};

static int on_record(void *ctx, void *data, size_t size)
{
	struct consumer *c = ctx;
	const struct bench_event *e = data;
	uint32_t key = e->key % KEYS;
	uint64_t v = e->value;
	unsigned slot = v <= 1 ? 0 : 64 - __builtin_clzll(v - 1);

	c->events++;
	c->sum[key] += v;
	c->buckets[key][slot]++;
	return 0;
}

struct consumer *consumer_open(int map_fd)
{
	struct consumer *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rb = ring_buffer__new(map_fd, on_record, c, NULL);
	if (!c->rb) {
		free(c);
		return NULL;
	}
	return c;
}

/* Drain everything available; returns records consumed by this call (negative: -errno). */
long consumer_consume(struct consumer *c)
{
	uint64_t before = c->events;
	int err = ring_buffer__consume(c->rb);

	return err < 0 ? err : (long)(c->events - before);
}

uint64_t consumer_events(struct consumer *c)
{
	return c->events;
}

void consumer_close(struct consumer *c)
{
	ring_buffer__free(c->rb);
	free(c);
}
