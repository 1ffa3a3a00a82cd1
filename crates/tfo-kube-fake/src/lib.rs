//! A fake kube-apiserver on loopback, plain HTTP, for the agent's black-box tests and the
//! Kubernetes benchmark. No cluster can be installed where these run.
//!
//! It serves, at the JSON level, the subset the agent uses: list (field selectors,
//! `limit`/`continue` pages) and watch (chunked `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK`/
//! `ERROR` lines, resume from a resourceVersion, 410 Expired when it is older than the
//! retained history) of pods, nodes, namespaces, services, events, resource quotas,
//! workloads and endpoint slices; get/create/update/patch/delete of any of them (Leases
//! with resourceVersion conflicts); Status errors, 403 per resource and verb, 503. Every
//! API request is recorded with its Kubernetes verb, the input to the RBAC check.
//!
//! ```no_run
//! let api = tfo_kube_fake::FakeApi::start();
//! api.apply(tfo_kube_fake::objects::node("node-1"));
//! api.apply(tfo_kube_fake::objects::pod("default", "web-0", "node-1"));
//! api.write_kubeconfig("/tmp/kubeconfig").unwrap();
//! ```
//!
//! Not supported: TLS and authentication (any token is accepted), resourceVersion
//! semantics on lists (the current state is always served), set-based label selectors,
//! JSON patch, subresources other than `status`, protobuf, Table output, aggregated
//! discovery, `deletecollection`.

mod http;
pub mod objects;
mod resource;
mod state;
mod util;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

pub use resource::{RESOURCES, ResourceDef};
pub use state::Request;
use state::Shared;

/// How a fake is started.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Period of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Changes kept for watches that resume from an older resourceVersion; a watch from
    /// before the oldest kept change gets 410 Expired.
    pub history_limit: usize,
    /// 1: a current-thread runtime (tests); more: a multi-thread one (benchmarks).
    pub worker_threads: usize,
    /// The user named in 403 messages.
    pub user: String,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bookmark_interval: Duration::from_secs(1),
            history_limit: 10_000,
            worker_threads: 1,
            user: "system:serviceaccount:telemetryflow:tfo-agent".to_string(),
        }
    }
}

/// A running fake API server. It serves on a thread and runtime of its own, so sync and
/// async tests alike can use it; dropping it stops the server.
pub struct FakeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Starts on 127.0.0.1 with a free port and the default config.
    ///
    /// # Panics
    /// When no loopback port can be bound or no thread started.
    pub fn start() -> FakeApi {
        FakeApi::start_with(FakeConfig::default()).expect("starting the fake kube-apiserver")
    }

    pub fn start_with(cfg: FakeConfig) -> io::Result<FakeApi> {
        let listener = std::net::TcpListener::bind(cfg.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(
            cfg.history_limit,
            cfg.bookmark_interval,
            cfg.user,
        ));
        let runtime = if cfg.worker_threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cfg.worker_threads)
                .thread_name("tfo-kube-fake-worker")
                .enable_all()
                .build()?
        };
        let (tx, rx) = oneshot::channel();
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tfo-kube-fake".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(_) => return,
                    };
                    tokio::select! {
                        _ = http::serve(listener, served) => {}
                        _ = rx => {}
                    }
                });
                // Open connections and watches end with the runtime.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(FakeApi {
            shared,
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig pointing at this server: one cluster, a bearer-token user, the context
    /// current.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: tfo-agent\n  user:\n    token: fake-token\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tfo-agent\n    namespace: default\n\
             current-context: fake\npreferences: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Adds or replaces an object (its `kind`/`apiVersion` say which resource): a new
    /// resourceVersion, uid and creationTimestamp kept or generated, namespace defaulted
    /// to "default"; open watches get ADDED or MODIFIED. Returns the stored object.
    ///
    /// # Panics
    /// When the object's kind is not one the fake serves or it has no name.
    pub fn apply(&self, obj: Value) -> Value {
        self.try_apply(obj)
            .unwrap_or_else(|e| panic!("FakeApi::apply: {e}"))
    }

    pub fn try_apply(&self, obj: Value) -> Result<Value, String> {
        let res = resource::of_object(&obj)
            .ok_or_else(|| format!("unknown kind/apiVersion in {}", short(&obj)))?;
        self.shared.lock().apply(obj, res).map_err(|e| e.message)
    }

    /// Removes an object; open watches get DELETED. `ns` is ignored for cluster-scoped
    /// kinds. False when it did not exist.
    pub fn delete(&self, kind: &str, ns: &str, name: &str) -> bool {
        let res = res(kind);
        let ns = if RESOURCES[res].namespaced { ns } else { "" };
        self.shared.lock().delete(res, ns, name).is_some()
    }

    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let res = res(kind);
        let ns = if RESOURCES[res].namespaced { ns } else { "" };
        self.shared.lock().get(res, ns, name).map(|s| s.value())
    }

    /// Every stored object of a kind, ordered by namespace and name.
    pub fn list(&self, kind: &str) -> Vec<Value> {
        let res = res(kind);
        let st = self.shared.lock();
        st.store[res].values().map(|s| s.value()).collect()
    }

    /// The Lease as stored (as the agents wrote it), if any.
    pub fn lease(&self, ns: &str, name: &str) -> Option<Value> {
        self.get("Lease", ns, name)
    }

    /// Sends 410 Expired to every open watch, closes them and drops the history: every
    /// watcher must relist. Returns how many watches were open.
    pub fn expire_watches(&self) -> usize {
        self.shared.lock().expire_watches()
    }

    /// Answers `verb` on `resource` (plural, e.g. "pods", "leases", "pods/status"; "*"
    /// for all) with 403 Forbidden from now on.
    pub fn forbid(&self, resource: &str, verb: &str) {
        self.shared
            .lock()
            .forbidden
            .insert((resource.to_string(), verb.to_string()));
    }

    pub fn allow(&self, resource: &str, verb: &str) {
        self.shared
            .lock()
            .forbidden
            .remove(&(resource.to_string(), verb.to_string()));
    }

    /// While true, every API request is answered 503 and open watches are closed (an API
    /// server that is up but not serving).
    pub fn set_unavailable(&self, unavailable: bool) {
        let mut st = self.shared.lock();
        st.unavailable = unavailable;
        if unavailable {
            st.close_watches();
        }
    }

    /// While true, new connections are closed as soon as accepted and requests on open
    /// keep-alive connections get 503 with `Connection: close` (an unreachable server).
    pub fn set_refuse_connections(&self, refuse: bool) {
        let mut st = self.shared.lock();
        st.refuse = refuse;
        if refuse {
            st.close_watches();
        }
    }

    /// A MODIFIED event whose object has the wrong types (`"spec": 5`, `"labels"` a
    /// string) to every open watch of `kind`, selectors notwithstanding. Not stored.
    pub fn inject_malformed(&self, kind: &str) {
        let res = res(kind);
        self.shared.lock().inject_malformed(res);
    }

    /// Writes `line` (a newline is added) as is to every open watch of `kind`: for
    /// streams that are not even JSON.
    pub fn inject_watch_line(&self, kind: &str, line: &str) {
        let res = res(kind);
        let mut b = line.as_bytes().to_vec();
        b.push(b'\n');
        let b = bytes::Bytes::from(b);
        self.shared
            .lock()
            .watches
            .retain(|w| w.res != res || w.tx.send(b.clone()).is_ok());
    }

    /// Every API request answered so far (not the `/fake/*` admin ones), in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    pub fn open_watches(&self) -> usize {
        self.shared.lock().watches.len()
    }

    pub fn open_watches_of(&self, kind: &str) -> usize {
        let res = res(kind);
        self.shared
            .lock()
            .watches
            .iter()
            .filter(|w| w.res == res)
            .count()
    }

    /// The global resourceVersion counter.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// For watches opened from now on.
    pub fn set_bookmark_interval(&self, d: Duration) {
        self.shared.lock().bookmark_interval = d;
    }

    /// Object counts per resource, open watches, requests, resourceVersion (what
    /// `GET /fake/stats` answers).
    pub fn stats(&self) -> Value {
        http::stats(&self.shared.lock())
    }

    /// Fills the fake with [`objects::cluster`]: `nodes` nodes with `pods_per_node` pods
    /// each, plus namespaces, workloads, services, endpoint slices, quotas and events.
    pub fn load_cluster(&self, nodes: usize, pods_per_node: usize) {
        // Lock per object: watches and requests go on while a big cluster loads.
        objects::cluster_each(nodes, pods_per_node, &mut |obj| {
            if let Some(res) = resource::of_object(&obj) {
                let _ = self.shared.lock().apply(obj, res);
            }
        });
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// # Panics
/// On a kind the fake does not serve: a bug in the test.
fn res(kind: &str) -> usize {
    resource::lookup(kind).unwrap_or_else(|| panic!("tfo-kube-fake does not serve kind {kind:?}"))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(120).collect()
}
