//! `tfo-kube-fake --listen 127.0.0.1:PORT --nodes 100 --pods 10000 [--kubeconfig FILE]`
//!
//! Serves a generated cluster until killed; prints the URL on stdout once it is
//! listening. Admin: `POST /fake/expire` (every watcher relists), `GET /fake/requests`
//! (JSON lines), `GET /fake/stats`, `POST /fake/unavailable?on=true|false`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tfo_kube_fake::{FakeApi, FakeConfig};

const USAGE: &str =
    "usage: tfo-kube-fake [--listen ADDR] [--nodes N] [--pods N] [--kubeconfig FILE]
                     [--bookmark-interval SECS] [--history N] [--threads N]
  --listen ADDR             listen address (default 127.0.0.1:0, a free port)
  --nodes N                 nodes in the generated cluster (default 100)
  --pods N                  pods in all, spread evenly across the nodes (default 10000)
  --kubeconfig FILE         write a kubeconfig pointing at the server
  --bookmark-interval SECS  BOOKMARK period on watches that allow them (default 1)
  --history N               changes kept for resuming watches (default 10000)
  --threads N               server worker threads (default 2)";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tfo-kube-fake: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut cfg = FakeConfig {
        worker_threads: 2,
        ..FakeConfig::default()
    };
    let mut nodes = 100usize;
    let mut pods = 10_000usize;
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--listen" => {
                cfg.listen = val("--listen")?
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("--listen: {e}"))?
            }
            "--nodes" => nodes = num(&val("--nodes")?)?,
            "--pods" => pods = num(&val("--pods")?)?,
            "--kubeconfig" => kubeconfig = Some(val("--kubeconfig")?),
            "--bookmark-interval" => {
                cfg.bookmark_interval = Duration::from_secs_f64(
                    val("--bookmark-interval")?
                        .parse::<f64>()
                        .map_err(|e| format!("--bookmark-interval: {e}"))?,
                )
            }
            "--history" => cfg.history_limit = num(&val("--history")?)?,
            "--threads" => cfg.worker_threads = num(&val("--threads")?)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let api = FakeApi::start_with(cfg).map_err(|e| format!("listening: {e}"))?;
    // Pods spread evenly; the remainder of an uneven split is dropped, as the per-node
    // count is what the node-local agents are measured against.
    api.load_cluster(nodes, pods / nodes);
    if let Some(path) = kubeconfig {
        api.write_kubeconfig(&path)
            .map_err(|e| format!("writing {path}: {e}"))?;
    }
    println!("{}", api.url());
    eprintln!("tfo-kube-fake: {}", api.stats());
    loop {
        std::thread::park();
    }
}

fn num(s: &str) -> Result<usize, String> {
    s.parse().map_err(|e| format!("{s:?}: {e}"))
}
