// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The environment floor for scripts/bench-ebpf-floor: empty programs on the syscall exit
 * hook through each attach type the kernel offers for it (tp_btf, raw_tp, classic
 * tracepoint), an empty sys_enter, and one that only reads the clock. Not embedded, not
 * built by build-bpf. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "Dual BSD/GPL";
u64 sink;
SEC("tp_btf/sys_enter") int e_empty(u64 *ctx) { return 0; }
SEC("tp_btf/sys_exit") int x_empty(u64 *ctx) { return 0; }
SEC("raw_tp/sys_exit") int x_rawtp(u64 *ctx) { return 0; }
SEC("tracepoint/raw_syscalls/sys_exit") int x_tp(void *ctx) { return 0; }
SEC("tp_btf/sys_enter") int e_ktime(u64 *ctx) { sink = bpf_ktime_get_ns(); return 0; }
