//! The collector registry: one table entry per collector the config knows, so adding a
//! collector is one row here plus its module. The table says how to read a collector's
//! `enabled` flag from the config and how it runs: on an interval (built as a
//! [`Collector`] the scheduler calls), or as a streaming source on a thread of its own
//! (built as a [`Source`] that pushes to its signal's buffer as data arrives). A collector
//! whose constructor refuses its settings is warned about once.

use std::time::Duration;

use tfo_collectors::{
    Collector, HostPaths, NodeCollector, ProcessCollector, SystemCollector, SystemOptions,
};
use tfo_config::{Collectors, Config};
use tfo_exporter::Signal;

use crate::pipeline::kube::KubeSource;
use crate::pipeline::logs::LogSource;
use crate::pipeline::stream::Source;
use crate::settings;

/// A collector and its interval.
pub type Scheduled = (Box<dyn Collector>, Duration);

type Build = fn(&Config, &HostPaths) -> Result<Box<dyn Collector>, String>;

/// Builds a streaming source from the config. Must not do I/O (it also runs for
/// `config validate`): the source opens its files on its own thread.
type BuildSource = fn(&Config) -> Result<Box<dyn Source>, String>;

/// How a collector runs.
pub enum Run {
    /// Collected every `interval` by a task of the scheduler.
    Interval {
        interval: fn(&Collectors) -> Duration,
        build: Build,
    },
    /// Produces as data arrives, on a thread of its own, into the buffer of `signal` (the
    /// one it may wait on for room; a source may also push to the metrics buffer). A
    /// reload restarts it only when `changed` says its settings did.
    Stream {
        signal: fn(&Config) -> Signal,
        changed: fn(&Config, &Config) -> bool,
        build: BuildSource,
    },
}

/// One collector of the config's `collectors` section.
pub struct Entry {
    /// The key under `collectors.` (dotted for a nested one: `ebpf.hubble`); also the
    /// collector's name in logs and self-metrics.
    pub name: &'static str,
    pub enabled: fn(&Collectors) -> bool,
    pub run: Run,
}

pub const COLLECTORS: &[Entry] = &[
    Entry {
        name: "system",
        enabled: |c| c.system.enabled,
        run: Run::Interval {
            interval: |c| c.system.interval,
            build: |cfg, paths| {
                let s = &cfg.collectors.system;
                let opts = SystemOptions {
                    cpu: s.cpu,
                    memory: s.memory,
                    disk: s.disk,
                    network: s.network,
                };
                Ok(Box::new(SystemCollector::new(paths.clone(), opts)))
            },
        },
    },
    Entry {
        name: "node_exporter",
        enabled: |c| c.node_exporter.enabled,
        run: Run::Interval {
            interval: |c| c.node_exporter.interval,
            build: |cfg, paths| {
                let opts = settings::node_options(&cfg.collectors.node_exporter);
                // Patterns are checked by config validation; this is a second line of defence.
                NodeCollector::new(paths.clone(), opts)
                    .map(|n| Box::new(n) as Box<dyn Collector>)
                    .map_err(|e| e.to_string())
            },
        },
    },
    Entry {
        name: "kubernetes",
        enabled: |c| c.kubernetes.enabled,
        run: Run::Stream {
            // Events wait for room in the logs buffer (they can be produced again by the
            // next leader only if not acknowledged); without events only metrics are made.
            signal: |cfg| {
                if settings::kube_events(cfg) {
                    Signal::Logs
                } else {
                    Signal::Metrics
                }
            },
            changed: |a, b| {
                a.collectors.kubernetes != b.collectors.kubernetes
                    || settings::kube_node_name(a) != settings::kube_node_name(b)
            },
            build: |cfg| KubeSource::from_config(cfg).map(|s| Box::new(s) as Box<dyn Source>),
        },
    },
    Entry {
        name: "ebpf",
        enabled: |c| c.ebpf.enabled,
        run: Run::Interval {
            interval: |c| c.ebpf.interval,
            // The programs are loaded at the first cycle (on the collector's thread), not here:
            // building also runs for `config validate`.
            build: |cfg, _| Ok(Box::new(settings::ebpf_collector(cfg)) as Box<dyn Collector>),
        },
    },
    // Under collectors.ebpf but its own entry: it needs none of the programs (or their
    // privileges), so it runs whether or not they load, on the eBPF interval.
    Entry {
        name: "ebpf.hubble",
        enabled: |c| c.ebpf.hubble.enabled,
        run: Run::Interval {
            interval: |c| c.ebpf.interval,
            build: |cfg, _| {
                settings::hubble_collector(cfg).map(|c| Box::new(c) as Box<dyn Collector>)
            },
        },
    },
    Entry {
        name: "process",
        enabled: |c| c.process.enabled,
        run: Run::Interval {
            interval: |c| c.process.interval,
            build: |cfg, paths| {
                let opts = settings::process_options(&cfg.collectors.process);
                // Patterns are checked by config validation; this is a second line of defence.
                ProcessCollector::new(paths.clone(), opts)
                    .map(|p| Box::new(p) as Box<dyn Collector>)
                    .map_err(|e| e.to_string())
            },
        },
    },
    Entry {
        name: "logs",
        enabled: |c| c.logs.enabled,
        run: Run::Stream {
            signal: |_| Signal::Logs,
            // The checkpoints live in agent.data_dir; the resource and batch size are
            // applied to a running collector without restarting it.
            changed: |a, b| {
                a.collectors.logs != b.collectors.logs
                    || settings::logs_checkpoint_dir(a) != settings::logs_checkpoint_dir(b)
            },
            build: |cfg| LogSource::from_config(cfg).map(|s| Box::new(s) as Box<dyn Source>),
        },
    },
];

/// The enabled interval collectors, with their intervals, and one warning per enabled
/// collector that cannot run (its constructor refused). Streaming sources are in [`build_sources`].
pub fn build_collectors(cfg: &Config) -> (Vec<Scheduled>, Vec<String>) {
    let paths = settings::host_paths(cfg);
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for e in COLLECTORS {
        if !(e.enabled)(&cfg.collectors) {
            continue;
        }
        match &e.run {
            Run::Stream { .. } => {}
            Run::Interval { interval, build } => match build(cfg, &paths) {
                Ok(c) => out.push((c, interval(&cfg.collectors))),
                Err(err) => warnings.push(format!("collectors.{} is not started: {err}", e.name)),
            },
        }
    }
    (out, warnings)
}

/// The collectors grouped by interval, in the order each interval first appears and, within
/// a group, in registry order: each group runs on one thread (see `pipeline::collect`).
pub fn by_interval(collectors: Vec<Scheduled>) -> Vec<(Duration, Vec<Box<dyn Collector>>)> {
    let mut groups: Vec<(Duration, Vec<Box<dyn Collector>>)> = Vec::new();
    for (c, interval) in collectors {
        match groups.iter_mut().find(|(i, _)| *i == interval) {
            Some((_, g)) => g.push(c),
            None => groups.push((interval, vec![c])),
        }
    }
    groups
}

/// A streaming source ready to start.
pub struct Streamed {
    pub name: &'static str,
    pub signal: Signal,
    pub source: Box<dyn Source>,
}

/// The enabled streaming sources, and one warning per enabled source that cannot run.
pub fn build_sources(cfg: &Config) -> (Vec<Streamed>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for e in COLLECTORS {
        let Run::Stream { signal, build, .. } = &e.run else {
            continue;
        };
        if !(e.enabled)(&cfg.collectors) {
            continue;
        }
        match build(cfg) {
            Ok(source) => out.push(Streamed {
                name: e.name,
                signal: signal(cfg),
                source,
            }),
            Err(err) => warnings.push(format!("collectors.{} is not started: {err}", e.name)),
        }
    }
    (out, warnings)
}

/// Every warning about collectors that are enabled but will not run.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut w = build_collectors(cfg).1;
    w.extend(build_sources(cfg).1);
    w
}

/// Rebuilds one interval collector by name (after its task died), if it is still enabled.
pub fn rebuild(cfg: &Config, name: &str) -> Option<Scheduled> {
    let e = COLLECTORS.iter().find(|e| e.name == name)?;
    if !(e.enabled)(&cfg.collectors) {
        return None;
    }
    let Run::Interval { interval, build } = &e.run else {
        return None;
    };
    let c = build(cfg, &settings::host_paths(cfg)).ok()?;
    Some((c, interval(&cfg.collectors)))
}

/// Rebuilds one streaming source by name (after its thread died), if it is still enabled.
pub fn rebuild_source(cfg: &Config, name: &str) -> Option<Streamed> {
    build_sources(cfg).0.into_iter().find(|s| s.name == name)
}

/// Whether a reload from `old` to `new` must restart streaming source `name`.
pub fn source_changed(name: &str, old: &Config, new: &Config) -> bool {
    COLLECTORS.iter().any(|e| match &e.run {
        Run::Stream { changed, .. } if e.name == name => {
            (e.enabled)(&old.collectors) != (e.enabled)(&new.collectors) || changed(old, new)
        }
        _ => false,
    })
}

/// Names of every streaming source in the table.
pub fn source_names() -> impl Iterator<Item = &'static str> {
    COLLECTORS
        .iter()
        .filter(|e| matches!(e.run, Run::Stream { .. }))
        .map(|e| e.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collectors_are_grouped_by_interval_in_order() {
        let mut cfg = Config::default();
        cfg.collectors.system.enabled = true;
        cfg.collectors.node_exporter.enabled = true;
        cfg.collectors.process.enabled = true;
        cfg.collectors.system.interval = Duration::from_secs(15);
        cfg.collectors.node_exporter.interval = Duration::from_secs(15);
        cfg.collectors.process.interval = Duration::from_secs(30);
        let (scheduled, warn) = build_collectors(&cfg);
        assert!(warn.is_empty(), "{warn:?}");
        let groups: Vec<(Duration, Vec<&str>)> = by_interval(scheduled)
            .into_iter()
            .map(|(i, g)| (i, g.iter().map(|c| c.name()).collect()))
            .collect();
        assert_eq!(
            groups,
            vec![
                (Duration::from_secs(15), vec!["system", "node_exporter"]),
                (Duration::from_secs(30), vec!["process"]),
            ]
        );
    }

    #[test]
    fn every_collector_key_has_one_entry() {
        let mut names: Vec<_> = COLLECTORS.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COLLECTORS.len());
    }

    #[test]
    fn logs_is_a_streaming_source_built_without_io() {
        let mut cfg = Config::default();
        let tmp = tempfile::tempdir().unwrap();
        cfg.agent.data_dir = tmp.path().join("data");
        cfg.collectors.logs.enabled = true;
        cfg.collectors.logs.paths = vec!["/var/log/*.log".into()];
        let (sources, warn) = build_sources(&cfg);
        assert!(warn.is_empty(), "{warn:?}");
        assert_eq!(sources.len(), 1);
        assert_eq!((sources[0].name, sources[0].signal), ("logs", Signal::Logs));
        assert!(!cfg.agent.data_dir.exists(), "building does no I/O");
        assert!(warnings(&cfg).iter().all(|w| !w.contains("logs")));
        assert!(
            build_collectors(&cfg)
                .0
                .iter()
                .all(|(c, _)| c.name() != "logs")
        );
        let mut other = cfg.clone();
        other.agent.tags.insert("team".into(), "x".into());
        assert!(!source_changed("logs", &cfg, &other), "resource only: kept");
        other.collectors.logs.include_file_path = true;
        assert!(source_changed("logs", &cfg, &other));
        assert!(rebuild_source(&cfg, "logs").is_some());
        cfg.collectors.logs.enabled = false;
        assert!(rebuild_source(&cfg, "logs").is_none());
    }

    #[test]
    fn hubble_runs_without_the_ebpf_programs_and_is_built_without_io() {
        let mut cfg = Config::default();
        cfg.collectors.system.enabled = false;
        cfg.collectors.node_exporter.enabled = false;
        cfg.collectors.ebpf.hubble.enabled = true;
        assert!(!cfg.collectors.ebpf.enabled);
        let (run, warn) = build_collectors(&cfg);
        assert!(warn.is_empty(), "{warn:?}");
        let names: Vec<_> = run.iter().map(|(c, _)| c.name()).collect();
        assert_eq!(names, ["ebpf.hubble"]);
        assert_eq!(run[0].1, cfg.collectors.ebpf.interval);
        assert!(rebuild(&cfg, "ebpf.hubble").is_some());
        // Both on: two collectors, each under its own key.
        cfg.collectors.ebpf.enabled = true;
        let names: Vec<_> = build_collectors(&cfg)
            .0
            .iter()
            .map(|(c, _)| c.name())
            .collect();
        assert_eq!(names, ["ebpf", "ebpf.hubble"]);
        // An address the client cannot use is a warning naming the key.
        cfg.collectors.ebpf.hubble.address = "unix://relative".into();
        let warn = build_collectors(&cfg).1;
        assert_eq!(warn.len(), 1, "{warn:?}");
        assert!(warn[0].contains("collectors.ebpf.hubble"), "{warn:?}");
    }

    #[test]
    fn entry_names_are_config_sections() {
        let cfg = serde_json::to_value(Config::default()).unwrap();
        for e in COLLECTORS {
            let mut v = &cfg["collectors"];
            for part in e.name.split('.') {
                v = &v[part];
            }
            assert!(
                v.is_object(),
                "collectors.{} is not a config section",
                e.name
            );
        }
    }

    #[test]
    fn process_runs_on_its_interval_and_bad_settings_are_warned_about() {
        let mut cfg = Config::default();
        cfg.collectors.system.enabled = true;
        cfg.collectors.process.enabled = true;
        let (run, warn) = build_collectors(&cfg);
        assert!(warn.is_empty(), "{warn:?}");
        let process = run.iter().find(|(c, _)| c.name() == "process").unwrap();
        assert_eq!(process.1, cfg.collectors.process.interval);
        assert!(rebuild(&cfg, "system").is_some());
        assert!(rebuild(&cfg, "process").is_some());
        // A pattern validation would have refused: warned, naming the key, not started.
        cfg.collectors.process.include_command_lines = vec!["(".into()];
        let (run, warn) = build_collectors(&cfg);
        assert!(run.iter().all(|(c, _)| c.name() != "process"));
        assert_eq!(warn.len(), 1, "{warn:?}");
        assert!(
            warn[0].contains("collectors.process.include_command_lines"),
            "{warn:?}"
        );
        assert!(rebuild(&cfg, "process").is_none());
    }
}
