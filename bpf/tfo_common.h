/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared by the tfo_* programs: the comm exclusion map and the log2 histogram slot. */
#ifndef TFO_COMMON_H
#define TFO_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16

/* Comms (NUL-padded, 16 bytes) whose events are dropped in the kernel. Filled by the
 * loader from collectors.ebpf.exclude_processes plus its own comm ("tfo-agent"). Each
 * object has its own copy; the loader fills every one. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[TASK_COMM_LEN]);
	__type(value, u8);
} tfo_excl SEC(".maps");

/* The loader's own process (all its threads, whatever their names); 0 = none. */
const volatile u32 cfg_self_tgid = 0;

/* Set by the loader when tfo_excl holds a comm the tgid check does not already cover
 * (exclude_processes, or "tfo-agent" itself without exclude_self). When 0 the comm copy
 * and the hash lookup are skipped: one compare per event instead of ~150 ns. */
const volatile u8 cfg_excl_comms = 1;

static __always_inline bool excluded_current(void)
{
	char comm[TASK_COMM_LEN] = {};

	if (cfg_self_tgid && (u32)(bpf_get_current_pid_tgid() >> 32) == cfg_self_tgid)
		return true;
	if (!cfg_excl_comms)
		return false;
	bpf_get_current_comm(comm, sizeof(comm));
	return bpf_map_lookup_elem(&tfo_excl, comm) != 0;
}

static __always_inline bool excluded_task(struct task_struct *t)
{
	char comm[TASK_COMM_LEN] = {};

	if (cfg_self_tgid && (u32)t->tgid == cfg_self_tgid)
		return true;
	if (!cfg_excl_comms)
		return false;
	bpf_probe_read_kernel(comm, sizeof(comm), &t->comm);
	return bpf_map_lookup_elem(&tfo_excl, comm) != 0;
}

/* floor(log2(v)) for v >= 1, 0 for v == 0; clamped to slots - 1 by the caller. */
static __always_inline u32 log2_u64(u64 v)
{
	u32 r = 0, s;

	s = (v > 0xffffffffULL) << 5; v >>= s; r |= s;
	s = (v > 0xffff) << 4; v >>= s; r |= s;
	s = (v > 0xff) << 3; v >>= s; r |= s;
	s = (v > 0xf) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	r |= (u32)(v >> 1);
	return r;
}

/* Histogram slots kept in the kernel: slot i counts [2^i, 2^(i+1)) ns, the last slot
 * everything from 2^(HIST_SLOTS-1) ns (~9 minutes) up. The Rust side widens to 64. */
#define HIST_SLOTS 40

static __always_inline u32 hist_slot(u64 v)
{
	u32 s = log2_u64(v);

	return s < HIST_SLOTS - 1 ? s : HIST_SLOTS - 1;
}

#endif
