// SPDX-License-Identifier: GPL-2.0
/* prog_iter: walks every BPF program on the host (iter/bpf_prog) and writes one fixed-size record
 * per program: what BPF_OBJ_GET_INFO_BY_FD would tell, without opening programs by id. Opening by
 * id (BPF_PROG_GET_FD_BY_ID) needs CAP_SYS_ADMIN; attaching and reading this iterator needs only
 * CAP_BPF and CAP_PERFMON, so the agent can list programs every interval after dropping
 * CAP_SYS_ADMIN. otelbpf/kernel/prog_iter.py holds the matching dtype: keep both in sync. */
#include "vmlinux.h"
#include "otelbpf.h"

/* Ids of the first PROG_RECORD_MAX_MAPS maps a program uses; nr_map_ids says how many it has. */
#define PROG_RECORD_MAX_MAPS 64
/* Per-CPU stats are summed over the CPUs the kernel can have; set by the loader. */
#define PROG_ITER_MAX_CPUS 1024

const volatile __u32 nr_cpus = 1;

/* prog->stats carries no __percpu type tag in BTF, so bpf_per_cpu_ptr() refuses it, and kernels
 * without CONFIG_KALLSYMS_ALL cannot resolve per-CPU variables as ksyms. The per-CPU offset of CPU
 * i is learnt from our own per-CPU array instead: the address of its value on CPU i
 * (bpf_map_lookup_percpu_elem) minus the per-CPU pointer the array stores (bpf_array.pptrs[0]). */
/* A pointer's value as a plain number (read through memory, so the verifier treats it as one). */
static __always_inline __u64 address_of(const void *p)
{
	const void *volatile slot = p;
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), (const void *)&slot);
	return v;
}

struct prog_record {
	__u32 id;
	__u32 type;
	__u8 tag[8];
	char name[16];
	__u64 load_time;		/* CLOCK_BOOTTIME ns, as bpf_prog_info.load_time */
	__u64 run_cnt;
	__u64 run_time_ns;
	__u64 recursion_misses;
	__u32 created_by_uid;
	__u32 verified_insns;
	__u32 btf_id;
	__u32 gpl_compatible;
	__u32 nr_map_ids;
	__u32 _pad;
	__u32 map_ids[PROG_RECORD_MAX_MAPS];
};

/* Too large for the 512-byte BPF stack: one scratch record per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct prog_record);
} scratch SEC(".maps");

SEC("iter/bpf_prog")
int prog_iter(struct bpf_iter__bpf_prog *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct bpf_prog *prog = ctx->prog;
	struct bpf_prog_aux *aux;
	struct bpf_map **used_maps;
	struct prog_record *rec;
	__u64 stats, base = 0;
	__u32 zero = 0, i, n;

	if (!prog)
		return 0;
	rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return 0;
	__builtin_memset(rec, 0, sizeof(*rec));

	aux = prog->aux;
	rec->id = aux->id;
	rec->type = prog->type;
	bpf_probe_read_kernel(rec->tag, sizeof(rec->tag), prog->tag);
	bpf_probe_read_kernel_str(rec->name, sizeof(rec->name), aux->name);
	rec->load_time = aux->load_time;
	rec->verified_insns = aux->verified_insns;
	rec->created_by_uid = BPF_CORE_READ(aux, user, uid.val);
	rec->btf_id = BPF_CORE_READ(aux, btf, id);
	rec->gpl_compatible = BPF_CORE_READ_BITFIELD_PROBED(prog, gpl_compatible);

	/* The kernel sums the per-CPU counters the same way for bpf_prog_info (bpf_prog_get_stats). */
	stats = (__u64)BPF_CORE_READ(prog, stats);
	bpf_probe_read_kernel(&base, sizeof(base),
			      (void *)(address_of(&scratch) + bpf_core_field_offset(struct bpf_array, pptrs)));
	for (i = 0; i < PROG_ITER_MAX_CPUS && i < nr_cpus && stats && base; i++) {
		const void *cpu_value = bpf_map_lookup_percpu_elem(&scratch, &zero, i);
		__u64 st, v = 0;

		if (!cpu_value)
			break;
		st = stats + (address_of(cpu_value) - base);
		bpf_probe_read_kernel(&v, sizeof(v), (void *)(st + bpf_core_field_offset(struct bpf_prog_stats, cnt)));
		rec->run_cnt += v;
		bpf_probe_read_kernel(&v, sizeof(v), (void *)(st + bpf_core_field_offset(struct bpf_prog_stats, nsecs)));
		rec->run_time_ns += v;
		bpf_probe_read_kernel(&v, sizeof(v), (void *)(st + bpf_core_field_offset(struct bpf_prog_stats, misses)));
		rec->recursion_misses += v;
	}

	n = aux->used_map_cnt;
	rec->nr_map_ids = n;
	used_maps = aux->used_maps;
	for (i = 0; i < PROG_RECORD_MAX_MAPS && i < n; i++) {
		struct bpf_map *map = NULL;

		bpf_probe_read_kernel(&map, sizeof(map), &used_maps[i]);
		if (!map)
			break;
		rec->map_ids[i] = BPF_CORE_READ(map, id);
	}
	bpf_seq_write(seq, rec, sizeof(*rec));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
