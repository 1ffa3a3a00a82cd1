// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Syscalls and file I/O: tp_btf/sys_enter + tp_btf/sys_exit.
 *
 * Per syscall number: calls, errors (return < 0) and an entry-to-exit latency histogram.
 * File I/O: the read/write/fsync families on *regular files* (the fd is looked up in the
 * task's fd table at entry and its inode mode checked), and opens; count, errors, bytes
 * (positive return values) and latency per operation.
 *
 * Without latency (cfg_latency = 0, collectors.ebpf.syscall_latency: false) only
 * tfo_sys_exit is attached and does everything at exit: the number from regs->orig_ax,
 * the fd from regs->di (the saved user registers; read/write/fsync leave them as they
 * were). That halves the per-syscall cost, which on a VM is mostly the fixed price of
 * each attached hook and of each clock read, not the programs' own work.
 *
 * The entry timestamp lives in task-local storage (no size limit, freed with the task,
 * so threads that never return from exit/exit_group leak nothing). Numbers are x86_64.
 */
#include "tfo_common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader (collect_syscalls, collect_file_io, syscall_latency). */
const volatile u8 cfg_syscalls = 1;
const volatile u8 cfg_fileio = 1;
const volatile u8 cfg_latency = 1;

#define SC_MAX 512

enum fio_op { FIO_NONE = 0, FIO_READ = 1, FIO_WRITE = 2, FIO_FSYNC = 3, FIO_OPEN = 4 };
#define FIO_OPS 4

struct sc_start {
	u64 ts;
	u32 nr;
	u32 op;
	/* Exclusion verdict cache (only with cfg_excl_comms): the comm it was computed for
	 * and 0 = none yet, 1 = counted, 2 = excluded. The verdict depends only on the comm
	 * (the tgid check runs first), so a rename (prctl, /proc/.../comm) or an exec that
	 * changes the comm is seen at the next syscall without hooking either. */
	u64 comm0, comm1;
	u32 verdict;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sc_start);
} tfo_sc_start SEC(".maps");

struct sc_val {
	u64 count;
	u64 errors;
	u64 hist[HIST_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SC_MAX);
	__type(key, u32);
	__type(value, struct sc_val);
} tfo_sc_stats SEC(".maps");

struct fio_val {
	u64 count;
	u64 errors;
	u64 bytes;
	u64 hist[HIST_SLOTS];
};

/* Index = enum fio_op - 1. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FIO_OPS);
	__type(key, u32);
	__type(value, struct fio_val);
} tfo_fio_stats SEC(".maps");

static __always_inline u32 fio_op_of(long nr)
{
	switch (nr) {
	case 0:   /* read */
	case 17:  /* pread64 */
	case 19:  /* readv */
	case 295: /* preadv */
	case 327: /* preadv2 */
		return FIO_READ;
	case 1:   /* write */
	case 18:  /* pwrite64 */
	case 20:  /* writev */
	case 296: /* pwritev */
	case 328: /* pwritev2 */
		return FIO_WRITE;
	case 74: /* fsync */
	case 75: /* fdatasync */
		return FIO_FSYNC;
	case 2:   /* open */
	case 85:  /* creat */
	case 257: /* openat */
	case 437: /* openat2 */
		return FIO_OPEN;
	}
	return FIO_NONE;
}

#define S_IFMT 0170000
#define S_IFREG 0100000

/* The file at fd < NR_OPEN_DEFAULT in the table embedded in files_struct. One constant
 * index per case: the verifier only lets BTF pointer loads use constant offsets, and a
 * BTF pointer to the file lets f_inode and i_mode be plain loads too. A bpf_probe_read_kernel
 * costs ~38 ns here (a helper call under retpolines and Safe RET); these loads cost ~1. */
#define FD_SLOT(n) case n: return files->fd_array[n];
#define FD_SLOT8(n) FD_SLOT(n) FD_SLOT(n + 1) FD_SLOT(n + 2) FD_SLOT(n + 3) \
	FD_SLOT(n + 4) FD_SLOT(n + 5) FD_SLOT(n + 6) FD_SLOT(n + 7)

static __always_inline struct file *fd_array_slot(struct files_struct *files, unsigned long fd)
{
	switch (fd) {
	FD_SLOT8(0) FD_SLOT8(8) FD_SLOT8(16) FD_SLOT8(24)
	FD_SLOT8(32) FD_SLOT8(40) FD_SLOT8(48) FD_SLOT8(56)
	}
	return 0;
}

/* The kfunc bpf_rdonly_cast(obj, btf_id) (6.2+): obj as an untrusted pointer to the kernel
 * type btf_id, through which plain loads (exception-table guarded, a NULL or bad pointer
 * reads 0) may follow further pointers. The verifier inlines it (no call at run time).
 * clang-14 and aya 0.14 cannot emit or relocate a kfunc call (an extern __ksym), so this
 * is a helper call with a placeholder number, TFO_KFUNC_RDONLY_CAST, that the loader
 * rewrites before loading: into a kfunc call to bpf_rdonly_cast (its BTF id from the
 * kernel's BTF) when the kernel has it, else into r0 = 0, which makes fd_is_regular take
 * its helper-based path (the verifier then sees the cast's result as 0 and drops the
 * other path unverified). */
#define TFO_KFUNC_RDONLY_CAST 0x54464f01
static void *(*const tfo_rdonly_cast)(const void *obj, u32 btf_id) = (void *)TFO_KFUNC_RDONLY_CAST;

/* Whether fd refers to a regular file in the task's fd table.
 *
 * With bpf_rdonly_cast: whatever the table's size, the slot fdt->fd[fd] (fdt->fd is a
 * pointer to pointers, which the verifier types as a plain number) is cast to a struct
 * kiocb placed so that its ki_filp field is that slot, and the file, its inode and the mode
 * are plain loads (~1 ns each). The fd table is RCU-freed and tp_btf programs run under
 * rcu_read_lock(), as the kernel's own lookups do.
 *
 * Without it (kernels before 6.2 or without their BTF): processes whose table was never
 * expanded (fdt->fd still points at files->fd_array: fewer than 64 fds open so far) take
 * the load-only path through the embedded array (a constant index per case: the verifier
 * only lets BTF pointer loads use constant offsets); the others read the fd slot, the file's
 * inode and its mode with bpf_probe_read_kernel (~38 ns each here: a helper call under
 * retpolines and Safe RET). */
static __always_inline bool fd_is_regular(struct task_struct *t, unsigned long fd)
{
	struct files_struct *files = t->files;
	struct fdtable *fdt = files->fdt;
	struct file **fds = fdt->fd;
	struct kiocb *slot;
	struct file *f = 0;
	struct inode *ino = 0;
	umode_t mode = 0;

	if (fd >= fdt->max_fds)
		return false;
	slot = tfo_rdonly_cast((void *)((u64)fds + fd * sizeof(*fds) -
					bpf_core_field_offset(struct kiocb, ki_filp)),
			       bpf_core_type_id_kernel(struct kiocb));
	if (slot) {
		f = slot->ki_filp;
		if (!f)
			return false;
		ino = f->f_inode;
		return ino && (ino->i_mode & S_IFMT) == S_IFREG;
	}
	if (fd < NR_OPEN_DEFAULT && (u64)fds == (u64)&files->fd_array[0]) {
		f = fd_array_slot(files, fd);
		if (!f)
			return false;
		ino = f->f_inode;
		return ino && (ino->i_mode & S_IFMT) == S_IFREG;
	}
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return false;
	bpf_probe_read_kernel(&ino, sizeof(ino), __builtin_preserve_access_index(&f->f_inode));
	if (!ino)
		return false;
	bpf_probe_read_kernel(&mode, sizeof(mode), __builtin_preserve_access_index(&ino->i_mode));
	return (mode & S_IFMT) == S_IFREG;
}

/* Whether the current task's comm is in tfo_excl, cached in its task storage. */
static __always_inline bool comm_excluded(struct task_struct *t, struct sc_start *s)
{
	u64 key[2];

	/* Two 8-byte loads straight from task->comm (a BTF pointer; no helper call). */
	key[0] = *(u64 *)&t->comm[0];
	key[1] = *(u64 *)&t->comm[8];
	if (!s->verdict || key[0] != s->comm0 || key[1] != s->comm1) {
		s->comm0 = key[0];
		s->comm1 = key[1];
		s->verdict = bpf_map_lookup_elem(&tfo_excl, key) ? 2 : 1;
	}
	return s->verdict == 2;
}

/* Whether syscall `nr` of the current task is counted, and its file I/O operation
 * (FIO_NONE unless the fd in regs->di is a regular file, for read/write/fsync). *sp gets
 * the task storage: always with `storage` (the entry program keeps its timestamp there),
 * otherwise only when names are excluded (its verdict cache), else 0. */
static __always_inline bool classify(long nr, struct pt_regs *regs, bool storage,
				     struct sc_start **sp, u32 *opp)
{
	struct task_struct *t;
	struct sc_start *s = 0;
	u32 op = FIO_NONE;

	if ((unsigned long)nr >= SC_MAX)
		return false;
	if (cfg_fileio)
		op = fio_op_of(nr);
	if (!cfg_syscalls && op == FIO_NONE)
		return false;
	/* One helper call (~21 ns here) serves the tgid check, the comm and the fd table;
	 * bpf_get_current_pid_tgid() would be a second one. */
	t = bpf_get_current_task_btf();
	if (cfg_self_tgid && (u32)t->tgid == cfg_self_tgid)
		return false;
	if (storage || cfg_excl_comms) {
		s = bpf_task_storage_get(&tfo_sc_start, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!s)
			return false;
		if (cfg_excl_comms && comm_excluded(t, s))
			return false;
	}
	/* The fd check only for the read/write/fsync families (switch on nr first). The fd is
	 * the register's low 32 bits, as the kernel takes it (unsigned int, or truncated to it
	 * by fdget for readv/writev's unsigned long). */
	if (op != FIO_NONE && op != FIO_OPEN && !fd_is_regular(t, (u32)regs->di)) {
		op = FIO_NONE;
		if (!cfg_syscalls)
			return false;
	}
	*sp = s;
	*opp = op;
	return true;
}

SEC("tp_btf/sys_enter")
int tfo_sys_enter(u64 *ctx)
{
	long nr = (long)ctx[1];
	struct sc_start *s = 0;
	u32 op = FIO_NONE;

	if (!classify(nr, (struct pt_regs *)ctx[0], true, &s, &op) || !s)
		return 0;
	s->nr = nr;
	s->op = op;
	s->ts = bpf_ktime_get_ns();
	return 0;
}

/* Counts one completed syscall (and its file I/O operation), with its latency slot when
 * measured (hist = 1). */
static __always_inline void account(u32 nr, u32 op, long ret, u32 slot, bool hist)
{
	if (cfg_syscalls) {
		struct sc_val *v = bpf_map_lookup_elem(&tfo_sc_stats, &nr);

		if (v) {
			v->count++;
			if (ret < 0)
				v->errors++;
			if (hist)
				v->hist[slot]++;
		}
	}
	if (op != FIO_NONE) {
		u32 idx = op - 1;
		struct fio_val *f = bpf_map_lookup_elem(&tfo_fio_stats, &idx);

		if (f) {
			f->count++;
			if (ret < 0)
				f->errors++;
			else if (op == FIO_READ || op == FIO_WRITE)
				f->bytes += ret;
			if (hist)
				f->hist[slot]++;
		}
	}
}

/* Count-only: everything at exit, no clock, task storage only when names are excluded. */
static __always_inline int exit_count_only(struct pt_regs *regs, long ret)
{
	long nr = (long)regs->orig_ax;
	struct sc_start *s = 0;
	u32 op = FIO_NONE;

	if (classify(nr, regs, false, &s, &op))
		account((u32)nr, op, ret, 0, false);
	return 0;
}

SEC("tp_btf/sys_exit")
int tfo_sys_exit(u64 *ctx)
{
	long ret = (long)ctx[1];
	struct sc_start *s;
	u64 ts;
	u32 nr, op;

	if (!cfg_latency)
		return exit_count_only((struct pt_regs *)ctx[0], ret);
	s = bpf_task_storage_get(&tfo_sc_start, bpf_get_current_task_btf(), 0, 0);
	if (!s || !s->ts)
		return 0;
	ts = s->ts;
	nr = s->nr;
	op = s->op;
	s->ts = 0;
	account(nr, op, ret, hist_slot(bpf_ktime_get_ns() - ts), true);
	return 0;
}
