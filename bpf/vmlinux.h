/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Hand-written minimal kernel type subset for the tfo_* CO-RE programs.
 *
 * Not generated: it declares only the types and fields the programs touch. Every struct is
 * marked preserve_access_index, so clang emits CO-RE relocations by field *name* and the
 * loader (aya) resolves the real offsets from the running kernel's BTF
 * (/sys/kernel/btf/vmlinux or collectors.ebpf.btf_path). Field order and padding here are
 * therefore irrelevant; names and types must match the kernel's.
 *
 * Checked against `bpftool btf dump file /sys/kernel/btf/vmlinux format c` on 6.18 (x86_64).
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0
typedef unsigned short umode_t;

/* UAPI constants (include/uapi/linux/bpf.h) used by map definitions and helper flags. */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_F_NO_PREALLOC = 1,
	BPF_LOCAL_STORAGE_GET_F_CREATE = 1,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct pt_regs {
	unsigned long di;
	unsigned long si;
	unsigned long dx;
	unsigned long orig_ax;
};

struct inode {
	umode_t i_mode;
};

struct file {
	struct inode *f_inode;
};

/* Only as the type bpf_rdonly_cast gives a fd table slot (see tfo_syscalls.bpf.c). */
struct kiocb {
	struct file *ki_filp;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

/* NR_OPEN_DEFAULT = BITS_PER_LONG: the fds a process has before its table is expanded. */
#define NR_OPEN_DEFAULT 64

struct files_struct {
	struct fdtable *fdt;
	struct file *fd_array[NR_OPEN_DEFAULT];
};

/* Scheduler state read by tfo_sched_sw (CONFIG_SCHED_INFO, CONFIG_FAIR_GROUP_SCHED). */
struct rq {
	u64 clock;
};

struct cfs_rq {
	struct rq *rq;
};

struct sched_entity {
	struct cfs_rq *cfs_rq;
};

struct sched_info {
	unsigned long long last_queued;
};

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
	struct files_struct *files;
	struct sched_entity se;
	struct sched_info sched_info;
};

struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
};

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
	u16 sk_type;
};

struct sk_buff;

#pragma clang attribute pop

#endif /* __VMLINUX_H__ */
