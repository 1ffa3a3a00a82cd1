//! Flows per second per core through the client and aggregator, from the fake observer on
//! a Unix socket, and memory under a sustained stream of ever-new series.
//!
//! `cargo bench -p tfo-hubble --bench flows [-- <million flows>]`. The client runs on a
//! thread of its own with a current-thread runtime, as in the agent (the HTTP/2 connection
//! task runs there too); its CPU time is that thread's (CLOCK_THREAD_CPUTIME_ID), so the
//! fake server's work, on other threads, is not counted. Each flow is a realistic message
//! (timestamps, addresses, labels, pod names, URLs) of which the client decodes a subset.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tfo_hubble::aggregate::{AggOptions, Aggregator};
use tfo_hubble::client::{self, Address, ClientOptions, Status};
use tfo_hubble_fake::flows::{self as f, Flags};
use tfo_hubble_fake::{End, FakeHubble, Session};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer and a clock id this kernel has.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A mix like a busy node's: mostly L3/L4 TCP, some drops, L7 HTTP and DNS, lost events.
/// With `distinct`, every flow has a new source namespace (a cardinality flood).
fn mix(distinct: usize) -> Vec<tfo_hubble_fake::proto::observer::GetFlowsResponse> {
    let ack = Flags {
        ack: true,
        psh: true,
        ..Flags::default()
    };
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let mut v = Vec::new();
    for i in 0..distinct.max(1) {
        let src = if distinct > 0 {
            format!("tenant-{i}")
        } else {
            "shop".to_string()
        };
        let b = |dir| f::base(f::FORWARDED, dir, &src, "db");
        v.extend([
            f::msg(f::with_tcp(b(f::EGRESS), ack)),
            f::msg(f::with_tcp(b(f::INGRESS), ack)),
            f::msg(f::with_tcp(b(f::EGRESS), syn)),
            f::msg(f::with_tcp(b(f::INGRESS), ack)),
            f::msg(f::with_udp(b(f::EGRESS))),
            f::msg(f::dropped(
                f::with_tcp(b(f::INGRESS), syn),
                f::POLICY_DENIED,
            )),
            f::msg(f::http(b(f::INGRESS), f::REQUEST, "GET", 0)),
            f::msg(f::http(b(f::INGRESS), f::RESPONSE, "GET", 200)),
            f::msg(f::dns(b(f::EGRESS), f::REQUEST, 0, &["A"])),
            f::msg(f::dns(b(f::EGRESS), f::RESPONSE, 0, &["A"])),
        ]);
    }
    v.push(f::lost(1, 3));
    v
}

struct Run {
    flows: u64,
    cpu: Duration,
    wall: Duration,
    rss: Vec<(u64, u64, usize)>,
}

fn run(total: u64, distinct: usize, namespaces: bool) -> Run {
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hubble.sock");
    let messages = mix(distinct);
    let repeat = total.div_ceil(messages.len() as u64);
    let sent = repeat * messages.len() as u64;
    let fake = server_rt.block_on(FakeHubble::unix(
        &sock,
        vec![Session {
            messages,
            repeat,
            end: End::Hold,
        }],
    ));
    let address = fake.address().to_string();
    let result = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let agg = Arc::new(Mutex::new(Aggregator::new(
            AggOptions {
                namespaces,
                max_series: 1000,
            },
            0,
        )));
        let status = Arc::new(Status::default());
        let opts = ClientOptions::new(Address::parse(&address).unwrap(), None);
        let (cpu0, t0) = (thread_cpu(), Instant::now());
        let mut rss = Vec::new();
        rt.block_on(async {
            let (a, s) = (agg.clone(), status.clone());
            let watch = async {
                let mut next = sent / 4;
                loop {
                    let n = s.messages.load(Ordering::Relaxed);
                    if n >= next {
                        rss.push((n, rss_kib(), a.lock().unwrap().series_count()));
                        next += sent / 4;
                    }
                    if n >= sent {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            };
            tokio::select! {
                _ = client::run(opts, agg.clone(), status.clone(), std::future::pending()) => {}
                _ = watch => {}
            }
        });
        let (cpu, wall) = (thread_cpu() - cpu0, t0.elapsed());
        let flows = agg.lock().unwrap().flows();
        Run {
            flows,
            cpu,
            wall,
            rss,
        }
    })
    .join()
    .unwrap();
    server_rt.block_on(fake.kill());
    result
}

fn main() {
    let millions: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2.0);
    let total = (millions * 1e6) as u64;
    for (label, distinct, namespaces) in [
        ("defaults (no namespaces)", 0, false),
        (
            "namespaces on, 5000 distinct source namespaces (cap 1000)",
            5000,
            true,
        ),
    ] {
        let r = run(total, distinct, namespaces);
        println!("{label}:");
        println!(
            "  {} flows in {:.2}s wall, client thread {:.2}s CPU: {:.0} flows/s per core ({:.0} ns/flow), {:.0} flows/s wall",
            r.flows,
            r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            r.flows as f64 / r.cpu.as_secs_f64(),
            r.cpu.as_nanos() as f64 / r.flows as f64,
            r.flows as f64 / r.wall.as_secs_f64(),
        );
        for (n, rss, series) in &r.rss {
            println!("  after {n:>9} messages: process VmRSS {rss:>7} KiB, {series:>4} series");
        }
    }
}
