//! Black-box: the built agent with `collectors.process` on, exporting to the Python OTLP
//! receiver. Known children (a busy loop, a sleeper with many threads and open files, a
//! process writing to disk) are selected by a marker in their command line, and what the
//! agent exported is checked against what this test reads from /proc itself; then the
//! filters, `top_n` and the `max_processes` cap with its overflow counter.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Children killed on drop, also when an assertion fails.
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `python -c script args...` and waits for its `ready` line.
fn spawn(script: &str, args: &[&str]) -> Child {
    let mut c = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    c
}

const BUSY: &str = "print('ready', flush=True)\nwhile True: pass";
const SLEEPER: &str = "import os, threading, time\nfs = [open(os.devnull) for _ in range(20)]\nfor _ in range(8): threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\nprint('ready', flush=True)\ntime.sleep(3600)";
const BIG: &str = "import time\nb = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('ready', flush=True)\ntime.sleep(3600)";
const WRITER: &str = "import os, sys, time\nf = open(sys.argv[1], 'wb')\nprint('ready', flush=True)\nwhile True:\n    f.write(b'x' * 65536); f.flush(); os.fsync(f.fileno()); time.sleep(0.05)";

fn process_config(port: u16, process_yaml: &str) -> String {
    config("grpc", port, "").replace(
        "  node_exporter:\n    enabled: false\n",
        &format!("  node_exporter:\n    enabled: false\n  process:\n    enabled: true\n    interval: 1s\n{process_yaml}"),
    )
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// One exported point: its attributes, value and time.
#[derive(Debug, Clone)]
struct Pt {
    attrs: BTreeMap<String, String>,
    value: f64,
    time: u64,
}

fn pts(reqs: &[Value], name: &str) -> Vec<Pt> {
    let mut out = Vec::new();
    for m in all_metrics(reqs).iter().filter(|m| m["name"] == name) {
        let d = if m["sum"].is_object() {
            &m["sum"]
        } else {
            &m["gauge"]
        };
        for p in d["data_points"].as_array().into_iter().flatten() {
            let attrs = p["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    (
                        a["key"].as_str().unwrap_or_default().to_string(),
                        string_value(&a["value"]),
                    )
                })
                .collect();
            let value = if p["as_int"].is_null() {
                num(&p["as_double"])
            } else {
                num(&p["as_int"])
            };
            out.push(Pt {
                attrs,
                value,
                time: num(&p["time_unix_nano"]) as u64,
            });
        }
    }
    out
}

/// The latest point of `name` for `pid` (and the extra attribute, if given).
fn latest(reqs: &[Value], name: &str, pid: u32, extra: Option<(&str, &str)>) -> Option<Pt> {
    pts(reqs, name)
        .into_iter()
        .filter(|p| p.attrs.get("process.pid") == Some(&pid.to_string()))
        .filter(|p| extra.is_none_or(|(k, v)| p.attrs.get(k).map(String::as_str) == Some(v)))
        .max_by_key(|p| p.time)
}

/// Pids with points of `name` in each cycle, by cycle time.
fn pids_by_cycle(reqs: &[Value], name: &str) -> BTreeMap<u64, BTreeSet<String>> {
    let mut m: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for p in pts(reqs, name) {
        m.entry(p.time)
            .or_default()
            .insert(p.attrs["process.pid"].clone());
    }
    m
}

/// Fields of /proc/<pid>/stat after the command name (index 0 is field 3, the state).
fn proc_stat(pid: u32) -> Vec<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    s[s.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/{file}"))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

#[test]
fn exported_values_match_proc() {
    let marker = format!("tfo-bb-values-{}", std::process::id());
    let out_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = out_dir.path().join("written");
    let data = data.to_str().unwrap();
    let kids = Kids(vec![
        spawn(BUSY, &[&marker, "busy"]),
        spawn(SLEEPER, &[&marker, "sleeper", "--token=secret123"]),
        spawn(WRITER, &[data, &marker, "writer"]),
    ]);
    let [busy, sleeper, writer] = [0, 1, 2].map(|i| kids.0[i].id());
    let rx = Receiver::start(None);
    let _agent = Agent::start(&process_config(
        rx.grpc_port,
        &format!(
            "    include_command_lines: ['{marker}']\n    file_descriptors: true\n    context_switches: true\n    command_line: true\n    cpu_utilization: true\n    threads: true\n    paging_faults: true\n    uptime: true\n"
        ),
    ));
    // Three cycles with every child: utilization needs two, writeback needs time.
    let reqs = rx.wait_until(
        Duration::from_secs(60),
        "three cycles of the children",
        |r| {
            pids_by_cycle(r, "process.cpu.time")
                .values()
                .filter(|p| p.len() == 3)
                .count()
                >= 3
                && latest(
                    r,
                    "process.disk.io",
                    writer,
                    Some(("disk.io.direction", "write")),
                )
                .is_some_and(|p| p.value > 0.0)
        },
    );
    // Only the marked children, nothing else.
    let all: BTreeSet<String> = pids_by_cycle(&reqs, "process.cpu.time")
        .into_values()
        .flatten()
        .collect();
    let want: BTreeSet<String> = [busy, sleeper, writer].iter().map(u32::to_string).collect();
    assert_eq!(all, want);

    let me = std::process::id().to_string();
    let owner = if unsafe { libc::geteuid() } == 0 {
        "root".to_string()
    } else {
        unsafe { libc::geteuid() }.to_string()
    };
    for pid in [busy, sleeper, writer] {
        let p = latest(&reqs, "process.memory.usage", pid, None).unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(p.attrs["process.executable.name"], comm.trim());
        assert_eq!(p.attrs["process.parent_pid"], me);
        assert_eq!(p.attrs["process.owner"], owner);
        assert!(p.attrs["process.command_line"].contains(&marker));
        // CPU time never runs ahead of what the kernel says now.
        let st = proc_stat(pid);
        let cpu_now = (st[11] + st[12]) as f64 / clk_tck();
        let user = latest(&reqs, "process.cpu.time", pid, Some(("cpu.mode", "user"))).unwrap();
        let sys = latest(&reqs, "process.cpu.time", pid, Some(("cpu.mode", "system"))).unwrap();
        assert!(
            user.value + sys.value <= cpu_now + 1e-9,
            "{pid}: {user:?} {sys:?} > {cpu_now}"
        );
        let up = latest(&reqs, "process.uptime", pid, None).unwrap();
        assert!(up.value > 0.0, "{up:?}");
    }

    // The busy loop: CPU time and utilization (two CPUs at most; the loop fills one).
    let user = latest(&reqs, "process.cpu.time", busy, Some(("cpu.mode", "user"))).unwrap();
    assert!(user.value > 0.0, "{user:?}");
    let util = latest(
        &reqs,
        "process.cpu.utilization",
        busy,
        Some(("cpu.mode", "user")),
    )
    .expect("utilization from the second cycle");
    assert!(util.value > 0.02 && util.value <= 1.0, "{util:?}");

    // The sleeper is still: its values equal what /proc says now.
    let st = proc_stat(sleeper);
    let threads = latest(&reqs, "process.thread.count", sleeper, None).unwrap();
    assert_eq!(threads.value as u64, st[17]);
    assert_eq!(threads.value, 9.0);
    let rss = latest(&reqs, "process.memory.usage", sleeper, None).unwrap();
    assert_eq!(rss.value as u64, st[21] * page_size());
    let vsize = latest(&reqs, "process.memory.virtual", sleeper, None).unwrap();
    assert_eq!(vsize.value as u64, st[20]);
    let fds = latest(&reqs, "process.unix.file_descriptor.count", sleeper, None).unwrap();
    let open = std::fs::read_dir(format!("/proc/{sleeper}/fd"))
        .unwrap()
        .count();
    assert_eq!(fds.value as usize, open);
    assert!(open >= 23, "{open}");
    let faults = latest(
        &reqs,
        "process.paging.faults",
        sleeper,
        Some(("system.paging.fault.type", "minor")),
    )
    .unwrap();
    assert_eq!(faults.value as u64, st[7]);
    let vol = latest(
        &reqs,
        "process.context_switches",
        sleeper,
        Some(("process.context_switch.type", "voluntary")),
    )
    .unwrap();
    assert!(vol.value > 0.0);
    assert!(vol.value as u64 <= proc_field(sleeper, "status", "voluntary_ctxt_switches:"));
    let line = &rss.attrs["process.command_line"];
    assert!(line.ends_with("sleeper --token=***"), "{line}");
    assert!(!line.contains("secret123"), "{line}");

    // The writer: bytes written to storage, not more than the kernel has counted now.
    let w = latest(
        &reqs,
        "process.disk.io",
        writer,
        Some(("disk.io.direction", "write")),
    )
    .unwrap();
    assert!(w.value as u64 <= proc_field(writer, "io", "write_bytes:"));

    // The host summary covers every process.
    let states = pts(&reqs, "system.process.count");
    let last = states.iter().map(|p| p.time).max().unwrap();
    let total: f64 = states
        .iter()
        .filter(|p| p.time == last)
        .map(|p| p.value)
        .sum();
    assert!(total >= 4.0, "{states:?}");
    let threads: Vec<Pt> = pts(&reqs, "system.thread.count");
    assert!(threads.iter().all(|p| p.value >= 12.0), "{threads:?}");
    assert!(!pts(&reqs, "system.process.created").is_empty());
    assert!(!pts(&reqs, "system.process.fork.rate").is_empty());
}

#[test]
fn filters_top_n_and_the_cap() {
    let marker = format!("tfo-bb-select-{}", std::process::id());
    let kids = Kids(vec![
        spawn(BUSY, &[&marker, "busy"]),
        spawn(SLEEPER, &[&marker, "sleeper-a"]),
        spawn(SLEEPER, &[&marker, "sleeper-b"]),
        spawn(BIG, &[&marker, "big"]),
    ]);
    let [busy, _a, _b, big] = [0, 1, 2, 3].map(|i| kids.0[i].id());

    // Include by marker, exclude sleeper-b, rank by CPU, keep 1: the busy loop; the two
    // others selected (sleeper-a, big) are counted as overflow.
    let rx = Receiver::start(None);
    let capped = Agent::start(&process_config(
        rx.grpc_port,
        &format!(
            "    include_command_lines: ['{marker}']\n    exclude_command_lines: ['sleeper-b']\n    max_processes: 1\n"
        ),
    ));
    // top_n by memory among the marked: the 64 MiB one.
    let rx2 = Receiver::start(None);
    let _top = Agent::start(&process_config(
        rx2.grpc_port,
        &format!("    include_command_lines: ['{marker}']\n    top_n: 1\n    top_by: memory\n"),
    ));

    let reqs = rx.wait_until(Duration::from_secs(60), "three capped cycles", |r| {
        pids_by_cycle(r, "process.cpu.time").len() >= 3
    });
    for (t, pids) in pids_by_cycle(&reqs, "process.cpu.time") {
        assert_eq!(pids, BTreeSet::from([busy.to_string()]), "cycle {t}");
    }
    // The default metric set: the stat metrics beyond it are opt-in.
    for name in [
        "process.cpu.utilization",
        "process.thread.count",
        "process.paging.faults",
        "process.uptime",
    ] {
        assert!(pts(&reqs, name).is_empty(), "{name}");
    }
    assert!(!pts(&reqs, "process.memory.virtual").is_empty());
    let addr = capped.bound_address("serving self-metrics");
    let (_, page) = http_get(addr, "/metrics");
    let overflow = sample(
        &page,
        "tfo_agent_collector_skipped_total{collector=\"process\",reason=\"overflow\"}",
    )
    .unwrap_or(0.0);
    // Two per cycle (sleeper-a and big); /metrics may lag the last export by a cycle.
    assert!(
        overflow >= 4.0 && (overflow as u64).is_multiple_of(2),
        "{overflow}\n{page}"
    );

    let reqs = rx2.wait_until(Duration::from_secs(60), "two top_n cycles", |r| {
        pids_by_cycle(r, "process.memory.usage").len() >= 2
    });
    for (t, pids) in pids_by_cycle(&reqs, "process.memory.usage") {
        assert_eq!(pids, BTreeSet::from([big.to_string()]), "cycle {t}");
    }
    let rss = latest(&reqs, "process.memory.usage", big, None).unwrap();
    assert!(rss.value >= (64 << 20) as f64, "{rss:?}");
}
