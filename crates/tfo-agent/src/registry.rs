//! The collector registry: one table entry per collector the config knows, so adding a
//! collector is one row here plus its module. The table says how to read a collector's
//! `enabled` flag and interval from the config and how to build it; a collector the config
//! accepts but this build does not contain has no constructor and is warned about once.

use std::time::Duration;

use tfo_collectors::{Collector, HostPaths, NodeCollector, SystemCollector, SystemOptions};
use tfo_config::{Collectors, Config};

use crate::settings;

/// A collector and its interval.
pub type Scheduled = (Box<dyn Collector>, Duration);

type Build = fn(&Config, &HostPaths) -> Result<Box<dyn Collector>, String>;

/// One collector of the config's `collectors` section.
pub struct Entry {
    /// The key under `collectors.`.
    pub name: &'static str,
    pub enabled: fn(&Collectors) -> bool,
    pub interval: fn(&Collectors) -> Duration,
    /// `None`: accepted by the config but not part of this build.
    pub build: Option<Build>,
}

pub const COLLECTORS: &[Entry] = &[
    Entry {
        name: "system",
        enabled: |c| c.system.enabled,
        interval: |c| c.system.interval,
        build: Some(|cfg, paths| {
            let s = &cfg.collectors.system;
            let opts = SystemOptions {
                cpu: s.cpu,
                memory: s.memory,
                disk: s.disk,
                network: s.network,
            };
            Ok(Box::new(SystemCollector::new(paths.clone(), opts)))
        }),
    },
    Entry {
        name: "node_exporter",
        enabled: |c| c.node_exporter.enabled,
        interval: |c| c.node_exporter.interval,
        build: Some(|cfg, paths| {
            let opts = settings::node_options(&cfg.collectors.node_exporter);
            // Patterns are checked by config validation; this is a second line of defence.
            NodeCollector::new(paths.clone(), opts)
                .map(|n| Box::new(n) as Box<dyn Collector>)
                .map_err(|e| e.to_string())
        }),
    },
    Entry {
        name: "kubernetes",
        enabled: |c| c.kubernetes.enabled,
        interval: |c| c.kubernetes.interval,
        build: None,
    },
    Entry {
        name: "ebpf",
        enabled: |c| c.ebpf.enabled,
        interval: |c| c.ebpf.interval,
        build: None,
    },
    Entry {
        name: "process",
        enabled: |c| c.process.enabled,
        interval: |c| c.process.interval,
        build: None,
    },
    Entry {
        name: "logs",
        enabled: |c| c.logs.enabled,
        interval: |_| Duration::ZERO,
        build: None,
    },
];

/// The enabled collectors this build can run, with their intervals, and one warning per
/// enabled collector that cannot run (not in this build, or its constructor refused).
pub fn build_collectors(cfg: &Config) -> (Vec<Scheduled>, Vec<String>) {
    let paths = settings::host_paths(cfg);
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for e in COLLECTORS {
        if !(e.enabled)(&cfg.collectors) {
            continue;
        }
        match e.build {
            None => warnings.push(format!(
                "collectors.{} is enabled but not available in this build; it will not run",
                e.name
            )),
            Some(build) => match build(cfg, &paths) {
                Ok(c) => out.push((c, (e.interval)(&cfg.collectors))),
                Err(err) => warnings.push(format!("collectors.{} is not started: {err}", e.name)),
            },
        }
    }
    (out, warnings)
}

/// Rebuilds one collector by name (after its task died), if it is still enabled.
pub fn rebuild(cfg: &Config, name: &str) -> Option<Scheduled> {
    let e = COLLECTORS.iter().find(|e| e.name == name)?;
    if !(e.enabled)(&cfg.collectors) {
        return None;
    }
    let c = (e.build?)(cfg, &settings::host_paths(cfg)).ok()?;
    Some((c, (e.interval)(&cfg.collectors)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_collector_key_has_one_entry() {
        let mut names: Vec<_> = COLLECTORS.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COLLECTORS.len());
    }

    #[test]
    fn unbuilt_collectors_are_warned_about_and_built_ones_run() {
        let mut cfg = Config::default();
        cfg.collectors.system.enabled = true;
        cfg.collectors.process.enabled = true;
        let (run, warn) = build_collectors(&cfg);
        assert!(run.iter().any(|(c, _)| c.name() == "system"));
        assert_eq!(warn.len(), 1, "{warn:?}");
        assert!(warn[0].contains("collectors.process"));
        assert!(rebuild(&cfg, "system").is_some());
        assert!(rebuild(&cfg, "process").is_none());
    }
}
