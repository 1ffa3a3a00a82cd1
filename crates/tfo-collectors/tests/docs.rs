//! `docs/metrics.md` must be exactly what the metric tables generate.

use std::path::Path;

#[test]
fn metrics_doc_is_generated_from_the_tables() {
    let want = tfo_collectors::docs::metrics_markdown(&[
        tfo_collectors::docs::CollectorDoc {
            name: "system",
            intro: "OpenTelemetry semantic-convention host metrics (the names the OpenTelemetry \
         Collector's hostmetrics receiver uses). Toggles: `cpu` (cpu and load), `memory`, \
         `disk` (disk I/O and filesystems), `network`; `system.uptime` is always on.",
            equivalent: "node_exporter",
            tables: tfo_collectors::system::metric_tables(),
        },
        tfo_collectors::docs::CollectorDoc {
            name: "node_exporter",
            intro: "The metrics Prometheus node_exporter exposes, as `node.<category>.<name>`, each \
         with node_exporter's name and labels for the agent's Prometheus endpoint. Toggles \
         (default on unless noted): `cpu` (cpu, schedstat), `cpu_frequency` (cpufreq, off), \
         `cpu_throttles` (cpu_throttle, off), `memory` (meminfo), `disk_io` (diskstats), \
         `filesystem`, `network` (netdev, netclass), `load_avg` (loadavg), `thermal` \
         (thermal_zone), `pressure`, `vmstat`, `sockstat`, `netstat`, `entropy`, `filefd`, \
         `conntrack`, `hwmon`, `timex`; `stat` (boot time, forks, procs) is always on. \
         Filters `disk_devices_*`, `mount_points_*`, `fs_types_*` and \
         `network_interfaces_*` (`_include` / `_exclude`, node_exporter's regular \
         expressions) default to node_exporter's: no partitions or ram/zram/loop/floppy \
         devices, no pseudo filesystems, nothing under /dev, /proc, /sys, \
         /run/credentials/*, /var/lib/docker/*, /var/lib/containers/storage/*; every interface.",
            equivalent: "node_exporter",
            tables: tfo_collectors::node::metric_tables(),
        },
        tfo_collectors::docs::CollectorDoc {
            name: "kubernetes",
            intro: "Kubernetes object state from the API server, with OpenTelemetry \
         semantic-convention resource attributes (`k8s.namespace.name`, `k8s.pod.name`, \
         `k8s.pod.uid`, `k8s.node.name`, `k8s.deployment.name`, ...; the agent adds \
         `k8s.cluster.name`). Names follow the seed, then the OpenTelemetry Collector's \
         `k8s_cluster` receiver; every metric is a Gauge. Pod and container metrics (one \
         resource per pod, the container as the `k8s.container.name` attribute) and node \
         metrics come from the node-local store on every agent; workloads, services and \
         namespaces are cluster-wide and come from the elected agent only (a \
         `coordination.k8s.io/v1` Lease). Toggles: `collect_pods`, `collect_nodes`, \
         `collect_deployments` (workloads), `collect_services`, `collect_namespaces`, \
         `collect_events`.",
            equivalent: "kube-state-metrics",
            tables: tfo_collectors::kubernetes::metric_tables(),
        },
        tfo_collectors::docs::CollectorDoc {
            name: "ebpf",
            intro: "Kernel metrics from the agent's own eBPF programs (`bpf/tfo_*.bpf.c`, \
         listed by `bpftool prog list | grep tfo`), which aggregate in the kernel (per-CPU \
         counters and log2 histograms; no per-event traffic) and skip the processes named \
         in `exclude_processes` (by comm). The Source column names each metric's hook. \
         Counters are cumulative since the programs were loaded, which is their start time. \
         Latencies (`*_ns`) are Histograms with power-of-two bucket bounds in nanoseconds \
         (2, 4, 8, ... up to the highest non-empty bucket; the kernel's buckets are \
         `[2^i, 2^(i+1))`, so a value equal to a bound is counted in the bucket above it, \
         and its last bucket, from 2^39 ns (about 9 minutes) up, is the overflow bucket); \
         their sum is estimated from bucket midpoints, as the kernel keeps no exact sum. \
         Syscalls are named from the x86_64 table (`nr_<n>` for a number without a name). \
         Toggles: `collect_syscalls`, `collect_network`, `collect_file_io`, \
         `collect_scheduler`, `collect_memory`, `collect_tcp_events`. A program that cannot \
         be loaded (missing capability CAP_BPF + CAP_PERFMON, no BTF, tracefs not mounted) \
         is reported once with the fix, and the others keep running.",
            equivalent: "",
            tables: tfo_collectors::ebpf::metric_tables(),
        },
        tfo_collectors::docs::CollectorDoc {
            name: "ebpf.hubble",
            intro: "Flow metrics from Cilium's Hubble observer API (`observer.Observer/GetFlows` \
         with `follow`), on the node's Hubble socket by default or Hubble Relay; independent \
         of the eBPF programs above (`collectors.ebpf.hubble.enabled`, off by default). \
         Counters are cumulative since the agent's Hubble client started, which is their \
         start time, and continue across reconnects; label values are Hubble's enum names. \
         With `namespaces: true` every metric but `hubble.lost_events` also carries \
         `source_namespace` and `destination_namespace` (pod names never). At most \
         `max_series` series per metric (default 1000): flows that would make more are \
         counted in the series whose every attribute is `_other`. The Cilium column names \
         the `hubble_*` Prometheus metric of Cilium's own Hubble metrics server each one \
         corresponds to. See docs/hubble.md.",
            equivalent: "Cilium",
            tables: tfo_collectors::hubble::metric_tables(),
        },
        tfo_collectors::docs::CollectorDoc {
            name: "process",
            intro: "Per-process metrics in OpenTelemetry semantic-convention names (off by \
         default). Every `process.*` point carries the process's identity: `process.pid`, \
         `process.parent_pid`, `process.executable.name` (the kernel's command name, 15 \
         bytes), `process.owner` (user name of the /proc/<pid> directory's owner, else the \
         uid), with `command_line: true` also `process.command_line` (arguments joined by \
         spaces, at most 4096 bytes, secrets replaced by `***` per `redact_patterns`), and \
         `container.id` when the process's cgroup names a container. Counters and up-down \
         counters start when the process started. Default set: `process.cpu.time`, \
         `process.memory.usage`, `process.memory.virtual`, `process.disk.io`; from `stat` \
         too, opt-in: `process.cpu.utilization` (`cpu_utilization`), \
         `process.thread.count` (`threads`), `process.paging.faults` (`paging_faults`), \
         `process.uptime` (`uptime`). `stat` is read for every process; `io` \
         (`disk_io`, on), `fd/` (`file_descriptors`, off) and `status` \
         (`context_switches`, off) only for the processes reported (filters `processes`, \
         `exclude_processes`, `users`, `exclude_users`, `include_command_lines`, \
         `exclude_command_lines`; kernel threads only with `kernel_threads`; `top_n` by \
         `top_by`; at most `max_processes`, the rest counted as overflow). The summary \
         covers every process. See docs/process.md.",
            equivalent: "",
            tables: tfo_collectors::process::metric_tables(),
        },
    ]);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/metrics.md is stale: run `UPDATE_DOCS=1 cargo test -p tfo-collectors --test docs`"
    );
}
