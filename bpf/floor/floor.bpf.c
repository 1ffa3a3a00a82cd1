// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The environment floor for scripts/bench-ebpf-floor: empty tp_btf programs on sys_enter
 * and sys_exit, and one that only reads the clock. Not embedded, not built by build-bpf. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "Dual BSD/GPL";
u64 sink;
SEC("tp_btf/sys_enter") int e_empty(u64 *ctx) { return 0; }
SEC("tp_btf/sys_exit") int x_empty(u64 *ctx) { return 0; }
SEC("tp_btf/sys_enter") int e_ktime(u64 *ctx) { sink = bpf_ktime_get_ns(); return 0; }
