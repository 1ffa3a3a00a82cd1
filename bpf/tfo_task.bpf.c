// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Processes: an iter/task program for the process collector (collectors.process). One
 * read of the iterator walks every task (thread) of the host and writes, per task, the
 * numbers /proc/<pid>/stat and /proc/<pid>/io are made of, as fixed binary records: the
 * kernel's cost per process is one program run instead of generating two seq_files
 * through two kept descriptors (do_task_stat, do_io_accounting with its ptrace check).
 *
 * Every task writes a thread record (its own CPU times, faults and I/O bytes). A thread
 * group leader (pid == tgid) writes, right after it, a leader record: what the process
 * has beyond its live threads (signal_struct: the times, faults and I/O bytes of its
 * threads that exited, the kernel's last adjusted utime/stime), its thread count, start
 * time, parent, state and memory. User space sums a process's thread records onto its
 * leader record, which gives what do_task_stat and do_io_accounting sum with the thread
 * list locked, and applies cputime_adjust() (utime/stime scaled to the precise runtime).
 *
 * Types are declared here with a ___tfo flavour (the loader matches them by the name
 * before "___"), so bpf/vmlinux.h and the other programs are untouched. Linux 6.2+
 * (mm->rss_stat as percpu counters, task->__state); on older kernels a relocation fails,
 * the program does not load and the collector reads /proc.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PF_KTHREAD 0x00200000
#define MM_FILEPAGES 0
#define MM_ANONPAGES 1
#define MM_SHMEMPAGES 3

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct percpu_counter___tfo {
	s64 count;
};

struct mm_struct___tfo {
	unsigned long total_vm;
	struct percpu_counter___tfo rss_stat[4];
};

struct task_io_accounting___tfo {
	u64 read_bytes;
	u64 write_bytes;
};

struct prev_cputime___tfo {
	u64 utime;
	u64 stime;
};

struct signal_struct___tfo {
	int nr_threads;
	struct prev_cputime___tfo prev_cputime;
	u64 utime;
	u64 stime;
	unsigned long min_flt;
	unsigned long maj_flt;
	unsigned long long sum_sched_runtime;
	struct task_io_accounting___tfo ioac;
};

struct sched_entity___tfo {
	u64 sum_exec_runtime;
};

struct task_struct___tfo {
	unsigned int __state;
	unsigned int flags;
	int exit_state;
	int pid;
	int tgid;
	struct task_struct___tfo *real_parent;
	u64 utime;
	u64 stime;
	struct sched_entity___tfo se;
	unsigned long min_flt;
	unsigned long maj_flt;
	u64 start_boottime;
	struct mm_struct___tfo *mm;
	struct signal_struct___tfo *signal;
	struct task_io_accounting___tfo ioac;
	char comm[16];
};

#pragma clang attribute pop

struct seq_file;

/* The iterator's context (include/linux/bpf.h, kernel/bpf/task_iter.c): fixed layout. */
struct bpf_iter_meta {
	struct seq_file *seq;
	u64 session_id;
	u64 seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct___tfo *task;
};

/* Written for every task. Layout shared with crates/tfo-ebpf/src/tasks.rs. */
struct tfo_thread_rec {
	u32 pid;
	u32 tgid;
	u64 utime;		/* ns, tick-sampled (task_cputime) */
	u64 stime;
	u64 runtime;		/* se.sum_exec_runtime, ns */
	u64 min_flt;
	u64 maj_flt;
	u64 read_bytes;		/* ioac (CONFIG_TASK_IO_ACCOUNTING) */
	u64 write_bytes;
};

/* Written after the thread record of a thread group leader. */
struct tfo_leader_rec {
	u32 ppid;		/* real_parent's tgid */
	u32 flags;		/* PF_* */
	u32 state;		/* __state */
	u32 exit_state;
	u32 nr_threads;
	u32 pad;
	u64 start_boottime;	/* ns since boot */
	u64 total_vm;		/* pages */
	s64 rss;		/* pages: file + anon + shmem */
	u64 sig_utime;		/* exited threads' */
	u64 sig_stime;
	u64 sig_runtime;
	u64 sig_min_flt;
	u64 sig_maj_flt;
	u64 sig_read_bytes;
	u64 sig_write_bytes;
	u64 prev_utime;		/* signal->prev_cputime: the last adjusted values */
	u64 prev_stime;
	char comm[16];
};

static __always_inline s64 positive(s64 v)
{
	return v < 0 ? 0 : v;
}

SEC("iter/task")
int tfo_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct___tfo *t = ctx->task;
	struct tfo_thread_rec th = {};
	struct tfo_leader_rec ld = {};
	struct signal_struct___tfo *sig;
	struct mm_struct___tfo *mm;

	if (!t)
		return 0;
	th.pid = t->pid;
	th.tgid = t->tgid;
	th.utime = t->utime;
	th.stime = t->stime;
	th.runtime = t->se.sum_exec_runtime;
	th.min_flt = t->min_flt;
	th.maj_flt = t->maj_flt;
	th.read_bytes = t->ioac.read_bytes;
	th.write_bytes = t->ioac.write_bytes;
	bpf_seq_write(seq, &th, sizeof(th));
	if (th.pid != th.tgid)
		return 0;

	ld.ppid = t->real_parent->tgid;
	ld.flags = t->flags;
	ld.state = t->__state;
	ld.exit_state = t->exit_state;
	ld.start_boottime = t->start_boottime;
	sig = t->signal;
	ld.nr_threads = sig->nr_threads;
	ld.sig_utime = sig->utime;
	ld.sig_stime = sig->stime;
	ld.sig_runtime = sig->sum_sched_runtime;
	ld.sig_min_flt = sig->min_flt;
	ld.sig_maj_flt = sig->maj_flt;
	ld.sig_read_bytes = sig->ioac.read_bytes;
	ld.sig_write_bytes = sig->ioac.write_bytes;
	ld.prev_utime = sig->prev_cputime.utime;
	ld.prev_stime = sig->prev_cputime.stime;
	/* /proc/<pid>/stat reads the memory of a process's own mm only (get_task_mm). */
	mm = t->mm;
	if (mm && !(ld.flags & PF_KTHREAD)) {
		ld.total_vm = mm->total_vm;
		/* get_mm_rss: each counter read as percpu_counter_read_positive. */
		ld.rss = positive(mm->rss_stat[MM_FILEPAGES].count) +
			 positive(mm->rss_stat[MM_ANONPAGES].count) +
			 positive(mm->rss_stat[MM_SHMEMPAGES].count);
	}
	__builtin_memcpy(ld.comm, t->comm, sizeof(ld.comm));
	bpf_seq_write(seq, &ld, sizeof(ld));
	return 0;
}
