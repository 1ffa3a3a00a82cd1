// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Memory: tp_btf/page_fault_user + page_fault_kernel (x86 exception tracepoints, every
 * fault on a user address), a perf_event program on the software event
 * PERF_COUNT_SW_PAGE_FAULTS_MAJ with sample period 1 (one run per major fault; there is
 * no major-fault tracepoint), and tp_btf/mark_victim (a task chosen by the OOM killer).
 */
#include "tfo_common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct mem_val {
	u64 pf_user;
	u64 pf_kernel;
	u64 major;
	u64 oom_kills;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct mem_val);
} tfo_mem_stats SEC(".maps");

static __always_inline struct mem_val *stats(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&tfo_mem_stats, &zero);
}

SEC("tp_btf/page_fault_user")
int tfo_pf_user(u64 *ctx)
{
	struct mem_val *v;

	if (excluded_current())
		return 0;
	v = stats();
	if (v)
		v->pf_user++;
	return 0;
}

SEC("tp_btf/page_fault_kernel")
int tfo_pf_kernel(u64 *ctx)
{
	struct mem_val *v;

	if (excluded_current())
		return 0;
	v = stats();
	if (v)
		v->pf_kernel++;
	return 0;
}

SEC("perf_event")
int tfo_major_fault(void *ctx)
{
	struct mem_val *v;

	if (excluded_current())
		return 0;
	v = stats();
	if (v)
		v->major++;
	return 0;
}

SEC("tp_btf/mark_victim")
int tfo_oom(u64 *ctx)
{
	struct mem_val *v = stats();

	if (v)
		v->oom_kills++;
	return 0;
}
