//! How long building a heartbeat payload takes on this host: `cargo bench -p tfo-platform`.
//! Reports min / median / p99 over repeated collections, with and without the system
//! information groups, plus the serialised size.

use std::time::{Duration, Instant};

use tfo_platform::{AgentHealth, CollectorOptions, HeartbeatBody, SystemInfoCollector};

fn run(include: bool, rounds: usize) {
    let mut o = CollectorOptions::new("bench", "0.0.0");
    o.include_system_info = include;
    let mut c = SystemInfoCollector::new("/", o);
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let info = c.collect(AgentHealth::default());
        let body = serde_json::to_vec(&HeartbeatBody { system_info: info }).unwrap_or_default();
        times.push(t.elapsed());
        bytes = body.len();
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "include_system_info={include:<5} rounds={rounds} min={:?} median={:?} p99={:?} body={bytes} B",
        at(0.0),
        at(0.5),
        at(0.99)
    );
}

fn main() {
    // `cargo test --benches` passes --bench too; keep that run short.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        500
    } else {
        5
    };
    run(true, rounds);
    run(false, rounds);
}
