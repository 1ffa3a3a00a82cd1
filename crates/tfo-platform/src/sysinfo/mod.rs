//! The heartbeat's `systemInfo` payload (seed 001): host, CPU (with per-core), memory and
//! swap, disk (with partitions), network (with interfaces and TCP states), processes,
//! system resources, container, virtualization, cloud and agent metadata, plus the
//! agent's own health.
//!
//! Everything is read from `/proc` and `/sys` under a root path (`/`, or `/host` when the
//! agent runs in a container with the host mounted), with bounded reads and scans, so a
//! collection takes milliseconds and never blocks. Percentages and rates cover the time
//! since the previous collection (the first one: since the collector was created), never
//! the time since boot; when no time has passed they are `null`. Cumulative counters
//! (bytes, operations, context switches) are since boot, as the kernel keeps them.

pub mod cpu;
pub mod disk;
pub mod host;
pub mod memory;
pub mod network;
pub mod process;
pub mod resources;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::detect::cloud::{CloudInfo, CloudProvider};
use crate::detect::container::{self, ContainerInfo};
use crate::detect::virt::{self, VirtualizationInfo};
use crate::model::AgentHealth;
use crate::read::{read_small, under};

pub use cpu::CpuInfo;
pub use disk::DiskInfo;
pub use host::HostInfo;
pub use memory::MemoryInfo;
pub use network::NetworkInfo;
pub use process::ProcessInfo;
pub use resources::ResourceInfo;

/// The `systemInfo` object. Host identity, agent metadata and health are always present;
/// the measurement groups only when `include_system_info` is on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemInfo {
    #[serde(flatten)]
    pub host: HostInfo,
    #[serde(flatten)]
    pub agent: AgentMeta,
    #[serde(flatten)]
    pub details: Option<Details>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMeta {
    pub agent_id: Option<String>,
    pub agent_name: String,
    pub agent_version: String,
    /// RFC 3339, UTC.
    pub agent_start_time: String,
    /// Seconds.
    pub agent_uptime: u64,
    /// RFC 3339, UTC: when this payload was built.
    pub collection_time: String,
    /// Milliseconds spent building this payload.
    pub collection_duration: f64,
    pub agent_health: AgentHealth,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    #[serde(flatten)]
    pub cpu: CpuInfo,
    #[serde(flatten)]
    pub memory: MemoryInfo,
    #[serde(flatten)]
    pub disk: DiskInfo,
    #[serde(flatten)]
    pub network: NetworkInfo,
    #[serde(flatten)]
    pub processes: ProcessInfo,
    #[serde(flatten)]
    pub resources: ResourceInfo,
    #[serde(flatten)]
    pub container: ContainerInfo,
    #[serde(flatten)]
    pub virtualization: VirtualizationInfo,
    #[serde(flatten)]
    pub cloud: CloudFields,
}

/// Cloud metadata as the payload names it; all `null` outside a cloud.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudFields {
    pub cloud_provider: Option<&'static str>,
    pub cloud_instance_id: Option<String>,
    pub cloud_instance_type: Option<String>,
    pub cloud_region: Option<String>,
    pub cloud_zone: Option<String>,
}

impl From<Option<&CloudInfo>> for CloudFields {
    fn from(c: Option<&CloudInfo>) -> Self {
        match c {
            None => CloudFields::default(),
            Some(c) => CloudFields {
                cloud_provider: Some(c.provider.as_str()),
                cloud_instance_id: c.instance_id.clone(),
                cloud_instance_type: c.instance_type.clone(),
                cloud_region: c.region.clone(),
                cloud_zone: c.zone.clone(),
            },
        }
    }
}

/// How to collect. Bounds keep a collection fast on hosts with very many processes,
/// sockets, mounts or interfaces.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// `heartbeat.include_system_info`; false sends identity and health only.
    pub include_system_info: bool,
    pub agent_name: String,
    pub agent_version: String,
    /// Overrides the kernel hostname (when the agent is configured with one).
    pub hostname: Option<String>,
    /// The agent's own root, for container detection (`/proc/self/cgroup`, `/.dockerenv`).
    /// `/` except in tests.
    pub self_root: PathBuf,
    /// The agent's environment, for container detection; `None` reads the process's.
    pub env: Option<BTreeMap<String, String>>,
    pub agent_start: SystemTime,
    pub max_processes: usize,
    pub max_tcp_sockets: usize,
    pub max_partitions: usize,
    pub max_interfaces: usize,
    pub max_cpus: usize,
}

impl CollectorOptions {
    pub fn new(agent_name: impl Into<String>, agent_version: impl Into<String>) -> Self {
        CollectorOptions {
            include_system_info: true,
            agent_name: agent_name.into(),
            agent_version: agent_version.into(),
            hostname: None,
            self_root: PathBuf::from("/"),
            env: None,
            agent_start: SystemTime::now(),
            max_processes: 5_000,
            max_tcp_sockets: 100_000,
            max_partitions: 64,
            max_interfaces: 64,
            max_cpus: 1024,
        }
    }
}

/// Builds `systemInfo` payloads, keeping the previous counters for interval percentages.
#[derive(Debug)]
pub struct SystemInfoCollector {
    root: PathBuf,
    opts: CollectorOptions,
    agent_id: Option<String>,
    cpu_static: cpu::Static,
    container: ContainerInfo,
    virt: VirtualizationInfo,
    cloud: Option<CloudInfo>,
    prev_stat: Option<cpu::Stat>,
    prev_io: Option<disk::IoCounters>,
    prev_net: Option<(Instant, network::Counters)>,
}

impl SystemInfoCollector {
    /// `root` is where the host's `/proc` and `/sys` are: `/`, or `/host` in a container.
    /// Reads the static parts (cpuinfo, container and virtualization detection) and takes
    /// the first counter snapshot, so the first [`collect`](Self::collect) already
    /// measures an interval.
    pub fn new(root: impl Into<PathBuf>, opts: CollectorOptions) -> Self {
        let root = root.into();
        let env = opts
            .env
            .clone()
            .unwrap_or_else(|| std::env::vars().collect());
        let cpu_static =
            cpu::parse_cpuinfo(&read_small(&under(&root, "/proc/cpuinfo")).unwrap_or_default());
        let container = container::detect(&opts.self_root, &env);
        let virt = virt::detect(&root);
        let mut c = SystemInfoCollector {
            agent_id: None,
            cpu_static,
            container,
            virt,
            cloud: None,
            prev_stat: None,
            prev_io: None,
            prev_net: None,
            root,
            opts,
        };
        if c.opts.include_system_info {
            c.prev_stat = c.read_stat();
            c.prev_io = disk::io_counters(&c.root);
            c.prev_net = network::totals(&c.root).map(|t| (Instant::now(), t));
        }
        c
    }

    pub fn set_agent_id(&mut self, id: Option<String>) {
        self.agent_id = id;
    }

    /// The result of [`detect_cloud`](crate::detect_cloud), done once by the caller.
    pub fn set_cloud(&mut self, cloud: Option<CloudInfo>) {
        self.cloud = cloud;
    }

    /// The DMI cloud hint to pass to [`detect_cloud`](crate::detect_cloud).
    pub fn cloud_hint(&self) -> Option<CloudProvider> {
        self.virt.cloud_hint
    }

    pub fn container(&self) -> &ContainerInfo {
        &self.container
    }

    pub fn virtualization(&self) -> &VirtualizationInfo {
        &self.virt
    }

    pub fn set_include_system_info(&mut self, on: bool) {
        self.opts.include_system_info = on;
    }

    fn read_stat(&self) -> Option<cpu::Stat> {
        read_small(&under(&self.root, "/proc/stat"))
            .map(|t| cpu::parse_stat(&t, self.opts.max_cpus))
    }

    /// Builds one payload. Never fails: what cannot be read is `null`.
    pub fn collect(&mut self, health: AgentHealth) -> SystemInfo {
        let started = Instant::now();
        let now = SystemTime::now();
        let stat = self.read_stat();
        let host = host::collect(
            &self.root,
            self.opts.hostname.as_deref(),
            stat.as_ref().and_then(|s| s.btime),
        );
        let details = if self.opts.include_system_info {
            let stat = stat.unwrap_or_default();
            let load = cpu::loadavg(&self.root);
            let cpu = cpu::build(
                &self.root,
                &self.cpu_static,
                self.prev_stat.as_ref(),
                &stat,
                load.as_ref(),
            );
            let processes =
                process::collect(&self.root, self.opts.max_processes, &stat, load.as_ref());
            let io = disk::io_counters(&self.root);
            let disk = disk::build(
                disk::partitions(&self.root, self.opts.max_partitions),
                self.prev_io.as_ref(),
                io.as_ref(),
            );
            let net_now = Instant::now();
            let prev_net = self
                .prev_net
                .as_ref()
                .map(|(t, c)| (c, net_now.saturating_duration_since(*t)));
            let (network, totals) = network::build(
                &self.root,
                self.opts.max_interfaces,
                self.opts.max_tcp_sockets,
                prev_net,
            );
            self.prev_stat = Some(stat);
            self.prev_io = io;
            self.prev_net = totals.map(|t| (net_now, t));
            Some(Details {
                cpu,
                memory: memory::collect(&self.root),
                disk,
                network,
                processes,
                resources: resources::collect(&self.root),
                container: self.container.clone(),
                virtualization: self.virt.clone(),
                cloud: CloudFields::from(self.cloud.as_ref()),
            })
        } else {
            None
        };
        let agent = AgentMeta {
            agent_id: self.agent_id.clone(),
            agent_name: self.opts.agent_name.clone(),
            agent_version: self.opts.agent_version.clone(),
            agent_start_time: rfc3339(self.opts.agent_start),
            agent_uptime: now
                .duration_since(self.opts.agent_start)
                .unwrap_or(Duration::ZERO)
                .as_secs(),
            collection_time: rfc3339(now),
            collection_duration: round2(started.elapsed().as_secs_f64() * 1000.0),
            agent_health: health,
        };
        SystemInfo {
            host,
            agent,
            details,
        }
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `part / whole` in percent, two decimals; `None` when `whole` is 0.
pub(crate) fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round2((part as f64 / whole as f64 * 100.0).clamp(0.0, 100.0)))
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-01-02T03:04:05.678Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_767_225_599)),
            "2025-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn pct_bounds() {
        assert_eq!(pct(1, 3), Some(33.33));
        assert_eq!(pct(1, 0), None);
        assert_eq!(pct(5, 4), Some(100.0));
    }
}
