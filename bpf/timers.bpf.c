// SPDX-License-Identifier: GPL-2.0
/* timers: kernel timer expirations by callback function: timer_list timers and hrtimers (the
 * ones behind nanosleep, poll/epoll timeouts and the scheduler tick).
 *
 * Exported as `timer.expirations` by conf/conf.d/timers.toml; the ksym decoder names the
 * function. */
#include "vmlinux.h"
#include "otelbpf.h"

struct timer_key {
	__u64 function;
	__u32 kind; /* 0 timer_list, 1 hrtimer */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2048);
	__type(key, struct timer_key);
	__type(value, __u64);
} timer_expirations SEC(".maps");

/* map_add(), not percpu_add(): two programs write this map, and hrtimer_expired (hard
 * interrupt) can run inside timer_expired (softirq) on the same CPU. */

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(timer_expired, struct timer_list *timer)
{
	struct timer_key key = { .function = (__u64)timer->function, .kind = 0 };

	map_add(&timer_expirations, &key, 1);
	return 0;
}

SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(hrtimer_expired, struct hrtimer *timer)
{
	struct timer_key key = { .function = (__u64)timer->function, .kind = 1 };

	map_add(&timer_expirations, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
