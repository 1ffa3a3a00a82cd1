//! Resident bytes per stored pod and CPU per 10,000 pods decoded, through the stores' own
//! path (a list page parsed as kube does, each item through `Watched<Pod>`, kept as
//! uid → Arc<Pod>), against the full k8s-openapi Pod as a reference.
//!
//! `cargo bench -p tfo-kube --bench pod_memory`. Bytes are counted by a global allocator
//! wrapper (requested sizes; malloc adds about 16 bytes per allocation, also reported).
//! Time is wall time on one thread with nothing else running in the process, which is its
//! CPU time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::Instant;

use kube::core::ObjectList;
use tfo_kube::model::Pod;
use tfo_kube::store::Watched;

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCS: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Relaxed);
        ALLOCS.fetch_sub(1, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - l.size() as i64, Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const N: usize = 10_000;
const POD: &str = include_str!("../tests/fixtures/pod.json");

/// A PodList page body of `n` realistic pods (the fixture, renamed per pod).
fn list_body(n: usize) -> String {
    let mut body = String::from(
        r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"2000000"},"items":["#,
    );
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        let pod = POD
            .replace(
                "checkout-7c9d8f6b5-x2k9p",
                &format!("checkout-7c9d8f6b5-{i:05}"),
            )
            .replace(
                "5e2a9c4d-8f1b-4a7e-b3d6-2c9e8f1a7b4c",
                &format!("5e2a9c4d-8f1b-4a7e-b3d6-{i:012}"),
            )
            .replace("\"1849302\"", &format!("\"{}\"", 1_000_000 + i))
            .replace("worker-3", &format!("worker-{}", i % 100));
        body.push_str(&pod);
    }
    body.push_str("]}");
    body
}

fn measure<T>(label: &str, body: &str, keep: impl Fn(&str) -> T) {
    let (live0, allocs0) = (LIVE.load(Relaxed), ALLOCS.load(Relaxed));
    let t = Instant::now();
    let kept = keep(body);
    let secs = t.elapsed().as_secs_f64();
    let bytes = (LIVE.load(Relaxed) - live0) as f64 / N as f64;
    let allocs = (ALLOCS.load(Relaxed) - allocs0) as f64 / N as f64;
    println!(
        "{label:<44} {bytes:>7.0} B/pod requested, {allocs:>5.1} allocations/pod (~{:>5.0} B/pod with malloc overhead), {:>6.1} ms CPU per {N} pods",
        bytes + allocs * 16.0,
        secs * 1e3
    );
    drop(kept);
}

fn main() {
    let body = list_body(N);
    println!(
        "{} pods, list body {:.1} MB ({} B/pod of JSON)",
        N,
        body.len() as f64 / 1e6,
        body.len() / N
    );
    // Warm up (page faults, lazy statics), then measure.
    let _ = serde_json::from_str::<ObjectList<Watched<Pod>>>(&body).unwrap();

    measure("slim store (Watched<Pod> -> set of Arc<Pod>)", &body, |b| {
        let list: ObjectList<Watched<Pod>> = serde_json::from_str(b).unwrap();
        // As the store keeps them: a hash set of Arcs keyed by the pod's own uid, modelled
        // here by a map from the uid's hash (the same 8-byte slot per entry).
        let mut map: HashMap<u64, Arc<Pod>> = HashMap::new();
        for w in list.items {
            if let Some(p) = w.object() {
                use std::hash::{BuildHasher, RandomState};
                map.insert(RandomState::new().hash_one(&*p.metadata.uid), p.clone());
            }
        }
        map
    });
    measure("slim Pod only (Vec<Pod>)", &body, |b| {
        #[derive(serde::Deserialize)]
        struct L {
            items: Vec<Pod>,
        }
        serde_json::from_str::<L>(b).unwrap().items
    });
    measure("k8s-openapi Pod (Vec, reference)", &body, |b| {
        serde_json::from_str::<ObjectList<k8s_openapi::api::core::v1::Pod>>(b)
            .unwrap()
            .items
    });
}
