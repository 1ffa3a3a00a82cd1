// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Scheduler: tp_btf/sched_switch, sched_wakeup, sched_wakeup_new, sched_migrate_task.
 *
 * Context switches (and preemptions) of the task switched out, wakeups, migrations, and
 * run-queue latency: the time from a wakeup (or a preemption, when the task stays
 * runnable) until the task runs.
 *
 * The kernel keeps that start itself (sched_info.last_queued, set at enqueue and when a
 * preempted task stays runnable, in rq clock ns) and has just updated the run queue's
 * clock when sched_switch fires, so the latency is next's rq->clock - last_queued: the
 * delay the kernel adds to its own run_delay a moment later. Plain loads: no clock read
 * (~60 ns each on this VM) and no task storage. Kernels without CONFIG_SCHED_INFO or
 * CONFIG_FAIR_GROUP_SCHED (no se.cfs_rq) keep the older way: a bpf_ktime_get_ns()
 * timestamp in task-local storage at wakeup or preemption.
 */
#include "tfo_common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TASK_RUNNING 0

struct rq_start {
	u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct rq_start);
} tfo_rq_start SEC(".maps");

struct sched_val {
	u64 switches;
	u64 preemptions;
	u64 wakeups;
	u64 wakeups_new;
	u64 migrations;
	u64 runq_hist[HIST_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct sched_val);
} tfo_sched_stats SEC(".maps");

static __always_inline struct sched_val *stats(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&tfo_sched_stats, &zero);
}

/* Whether this kernel's BTF has the fields for the load-only run-queue latency. */
static __always_inline bool kernel_queued_clock(void)
{
	struct task_struct *t = 0;

	return bpf_core_field_exists(t->sched_info.last_queued) &&
	       bpf_core_field_exists(t->se.cfs_rq);
}

static __always_inline void mark_runnable(struct task_struct *p)
{
	struct rq_start *s;

	if (kernel_queued_clock() || !p->pid || excluded_task(p))
		return;
	s = bpf_task_storage_get(&tfo_rq_start, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (s)
		s->ts = bpf_ktime_get_ns();
}

SEC("tp_btf/sched_wakeup")
int tfo_wakeup(u64 *ctx)
{
	struct task_struct *p = (struct task_struct *)ctx[0];
	struct sched_val *v = stats();

	if (v)
		v->wakeups++;
	mark_runnable(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int tfo_wakeup_new(u64 *ctx)
{
	struct task_struct *p = (struct task_struct *)ctx[0];
	struct sched_val *v = stats();

	if (v)
		v->wakeups_new++;
	mark_runnable(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int tfo_sched_sw(u64 *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	unsigned int prev_state = (unsigned int)ctx[3];
	struct sched_val *v = stats();
	struct rq_start *s;
	u64 q, now;

	if (!v)
		return 0;
	if (prev->pid && !excluded_task(prev)) {
		v->switches++;
		if (prev_state == TASK_RUNNING) {
			v->preemptions++;
			if (!kernel_queued_clock()) {
				s = bpf_task_storage_get(&tfo_rq_start, prev, 0,
							 BPF_LOCAL_STORAGE_GET_F_CREATE);
				if (s)
					s->ts = bpf_ktime_get_ns();
			}
		}
	}
	if (!next->pid)
		return 0;
	if (kernel_queued_clock()) {
		q = next->sched_info.last_queued;
		if (!q || excluded_task(next))
			return 0;
		now = next->se.cfs_rq->rq->clock;
		if (now >= q)
			v->runq_hist[hist_slot(now - q)]++;
		return 0;
	}
	s = bpf_task_storage_get(&tfo_rq_start, next, 0, 0);
	if (s && s->ts) {
		u64 d = bpf_ktime_get_ns() - s->ts;

		s->ts = 0;
		v->runq_hist[hist_slot(d)]++;
	}
	return 0;
}

SEC("tp_btf/sched_migrate_task")
int tfo_migrate(u64 *ctx)
{
	struct sched_val *v = stats();

	if (v)
		v->migrations++;
	return 0;
}
