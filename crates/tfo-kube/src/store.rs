//! Watch-backed stores of slim objects.
//!
//! One task per resource kind runs kube's `watcher()` (list in pages of 500, then watch
//! with bookmarks; relist after 410 Gone) and applies its events to a map of uid →
//! `Arc<slim object>`. A relist builds a fresh map and swaps it in at `InitDone`, so
//! objects deleted while the watch was down vanish. The agent reads `snapshot()`: cheap
//! `Arc` clones, no locks held while it maps them.
//!
//! Objects are deserialised straight into the slim model types through [`Watched`], a
//! `kube::Resource` wrapper: the full k8s-openapi object is never built. `Watched` first
//! takes the object's JSON as a raw slice and parses the slim type from it, so one object
//! that fails to parse is counted and skipped instead of failing its whole list page
//! (kube decodes a page with one `serde_json::from_str`, where one bad item would fail
//! the page and the relist would fail forever).
//!
//! Node-local kinds (this node's pods and its Node) run from [`Stores::start`];
//! cluster-wide kinds run between [`Stores::start_cluster_wide`] and
//! [`Stores::stop_cluster_wide`] (the lease holder only). Everything runs as tasks on the
//! caller's tokio runtime, which may be current-thread.

use std::borrow::Borrow;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, ObjectMeta};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::value::RawValue;
use tokio::task::AbortHandle;

use crate::model::{
    CronJob, DaemonSet, Deployment, EndpointSlice, Job, Meta, Namespace, Node, Pod, ReplicaSet,
    ResourceQuota, Service, StatefulSet,
};

/// How long a forbidden resource waits before asking again: RBAC changes are rare and each
/// attempt is logged at debug only, so there is no point in asking often.
const FORBIDDEN_RETRY: Duration = Duration::from_secs(300);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const PAGE_SIZE: u32 = 500;

/// A slim model type the stores can watch.
pub trait Object: DeserializeOwned + fmt::Debug + Send + Sync + 'static {
    /// Which store it lives in.
    const KIND: ResourceKind;
    /// `NamespaceResourceScope` or `ClusterResourceScope`.
    type Scope;
    fn meta(&self) -> &Meta;
}

/// The resource kinds the stores watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Pods,
    Nodes,
    Namespaces,
    Deployments,
    ReplicaSets,
    StatefulSets,
    DaemonSets,
    Jobs,
    CronJobs,
    Services,
    EndpointSlices,
    ResourceQuotas,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 12] = [
        ResourceKind::Pods,
        ResourceKind::Nodes,
        ResourceKind::Namespaces,
        ResourceKind::Deployments,
        ResourceKind::ReplicaSets,
        ResourceKind::StatefulSets,
        ResourceKind::DaemonSets,
        ResourceKind::Jobs,
        ResourceKind::CronJobs,
        ResourceKind::Services,
        ResourceKind::EndpointSlices,
        ResourceKind::ResourceQuotas,
    ];

    /// (kind, group, version, plural).
    pub const fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            ResourceKind::Pods => ("Pod", "", "v1", "pods"),
            ResourceKind::Nodes => ("Node", "", "v1", "nodes"),
            ResourceKind::Namespaces => ("Namespace", "", "v1", "namespaces"),
            ResourceKind::Deployments => ("Deployment", "apps", "v1", "deployments"),
            ResourceKind::ReplicaSets => ("ReplicaSet", "apps", "v1", "replicasets"),
            ResourceKind::StatefulSets => ("StatefulSet", "apps", "v1", "statefulsets"),
            ResourceKind::DaemonSets => ("DaemonSet", "apps", "v1", "daemonsets"),
            ResourceKind::Jobs => ("Job", "batch", "v1", "jobs"),
            ResourceKind::CronJobs => ("CronJob", "batch", "v1", "cronjobs"),
            ResourceKind::Services => ("Service", "", "v1", "services"),
            ResourceKind::EndpointSlices => {
                ("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices")
            }
            ResourceKind::ResourceQuotas => ("ResourceQuota", "", "v1", "resourcequotas"),
        }
    }

    pub const fn plural(self) -> &'static str {
        self.gvk().3
    }

    /// The RBAC resource name: `pods`, `deployments.apps`, `endpointslices.discovery.k8s.io`.
    pub fn rbac_name(self) -> Cow<'static, str> {
        let (_, group, _, plural) = self.gvk();
        if group.is_empty() {
            Cow::Borrowed(plural)
        } else {
            Cow::Owned(format!("{plural}.{group}"))
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}

macro_rules! object {
    ($t:ty, $kind:ident, $scope:ty) => {
        impl Object for $t {
            const KIND: ResourceKind = ResourceKind::$kind;
            type Scope = $scope;
            fn meta(&self) -> &Meta {
                &self.metadata
            }
        }
    };
}

object!(Pod, Pods, NamespaceResourceScope);
object!(Node, Nodes, ClusterResourceScope);
object!(Namespace, Namespaces, ClusterResourceScope);
object!(Deployment, Deployments, NamespaceResourceScope);
object!(ReplicaSet, ReplicaSets, NamespaceResourceScope);
object!(StatefulSet, StatefulSets, NamespaceResourceScope);
object!(DaemonSet, DaemonSets, NamespaceResourceScope);
object!(Job, Jobs, NamespaceResourceScope);
object!(CronJob, CronJobs, NamespaceResourceScope);
object!(Service, Services, NamespaceResourceScope);
object!(EndpointSlice, EndpointSlices, NamespaceResourceScope);
object!(ResourceQuota, ResourceQuotas, NamespaceResourceScope);

/// What kube's watcher hands over: the slim object, or why it did not parse. `meta` carries
/// only the resourceVersion (and name), which is all the watcher reads from an object.
pub struct Watched<T> {
    obj: Result<Arc<T>, Arc<Malformed>>,
    meta: ObjectMeta,
}

impl<T> Watched<T> {
    /// The parsed object; `None` when it was malformed (and counted as such).
    pub fn object(&self) -> Option<&Arc<T>> {
        self.obj.as_ref().ok()
    }
}

// Derived Clone would demand `T: Clone`; the object is shared, not copied.
impl<T> Clone for Watched<T> {
    fn clone(&self) -> Self {
        Watched {
            obj: self.obj.clone(),
            meta: self.meta.clone(),
        }
    }
}

#[derive(Debug)]
struct Malformed {
    uid: Option<Box<str>>,
    error: String,
}

impl<T> fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("name", &self.meta.name)
            .field("resource_version", &self.meta.resource_version)
            .field("ok", &self.obj.is_ok())
            .finish()
    }
}

impl<'de, T: Object> Deserialize<'de> for Watched<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only JSON syntax errors (which serde_json cannot resynchronise after) get past
        // this point as an error; everything the slim type rejects is kept as Malformed.
        let raw: Box<RawValue> = Deserialize::deserialize(d)?;
        let mut meta = ObjectMeta::default();
        let obj = match serde_json::from_str::<T>(raw.get()) {
            Ok(t) => {
                let m = t.meta();
                if !m.resource_version.is_empty() {
                    meta.resource_version = Some(m.resource_version.to_string());
                }
                meta.name = Some(m.name.to_string());
                Ok(Arc::new(t))
            }
            Err(e) => {
                // Salvage the identity so a malformed update still moves the watch on and a
                // malformed delete still removes the object.
                #[derive(serde::Deserialize, Default)]
                #[serde(rename_all = "camelCase")]
                struct Ident {
                    name: Option<Box<str>>,
                    uid: Option<Box<str>>,
                    resource_version: Option<Box<str>>,
                }
                #[derive(serde::Deserialize)]
                struct Outer {
                    metadata: Option<Ident>,
                }
                let id = serde_json::from_str::<Outer>(raw.get())
                    .ok()
                    .and_then(|o| o.metadata)
                    .unwrap_or_default();
                meta.name = id.name.map(String::from);
                meta.resource_version = id
                    .resource_version
                    .filter(|v| !v.is_empty())
                    .map(String::from);
                Err(Arc::new(Malformed {
                    uid: id.uid,
                    error: e.to_string(),
                }))
            }
        };
        Ok(Watched { obj, meta })
    }
}

impl<T: Object> Resource for Watched<T> {
    type DynamicType = ();
    type Scope = T::Scope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(T::KIND.gvk().0)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(T::KIND.gvk().1)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(T::KIND.gvk().2)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(T::KIND.gvk().3)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// Which kinds to collect (the `collect_*` switches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collect {
    pub pods: bool,
    pub nodes: bool,
    /// Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs.
    pub workloads: bool,
    /// Services and EndpointSlices.
    pub services: bool,
    /// Namespaces and ResourceQuotas.
    pub namespaces: bool,
}

impl Default for Collect {
    fn default() -> Self {
        Collect {
            pods: true,
            nodes: true,
            workloads: true,
            services: true,
            namespaces: true,
        }
    }
}

/// What this agent watches.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// This agent's node ([`crate::client::node_name`]). Without it there is nothing
    /// node-local to watch: pods and nodes become cluster-wide (lease holder only).
    pub node: Option<String>,
    /// Watch only the pods on `node` (every agent); otherwise all pods, by the lease holder.
    pub node_local_pods: bool,
    pub collect: Collect,
    /// Objects in these namespaces (and these Namespaces themselves) are not stored.
    pub exclude_namespaces: Vec<String>,
}

/// A resource's watch, as the agent reports it (`/readyz`, logs, heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceStatus {
    /// Not watched (not collected, or cluster-wide and this agent is not the lease holder).
    Stopped,
    /// Started; the first full list has not completed.
    Syncing,
    /// The store holds a complete list, kept current by the watch.
    Ready,
    /// The API server refused (RBAC); retried every 5 minutes.
    Forbidden {
        verb: String,
        resource: String,
        message: String,
    },
    /// Listing or watching fails (unreachable, 5xx, undecodable reply); retried with backoff.
    Failing { error: String },
}

/// Counters of one resource's watch, since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceStats {
    /// Complete lists done (the first one and every relist).
    pub relists: u64,
    /// Objects currently stored.
    pub objects: u64,
    /// Objects that did not parse and were skipped.
    pub malformed: u64,
    /// Objects skipped because their namespace is excluded.
    pub excluded: u64,
    /// The watch expired (410 Gone) and was replaced by a relist.
    pub expired: u64,
    /// 403 replies.
    pub forbidden: u64,
    /// Connection, TLS, timeout and 5xx failures.
    pub transport: u64,
    /// Replies or watch lines that were not valid JSON for the kind.
    pub decode: u64,
    /// Other API errors (4xx other than 403/410).
    pub other: u64,
    pub last_error: Option<String>,
}

struct KindState {
    status: ResourceStatus,
    stats: ResourceStats,
}

/// A stored object, hashed and compared by its uid, so the set needs no copy of the uid as
/// a key (one allocation and ~70 bytes per pod less than a map keyed by `Box<str>`).
struct ByUid<T>(Arc<T>);

impl<T: Object> ByUid<T> {
    fn uid(&self) -> &str {
        &self.0.meta().uid
    }
}

impl<T: Object> Hash for ByUid<T> {
    // Must hash exactly as `str` does, for lookups through `Borrow<str>`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.uid().hash(state)
    }
}

impl<T: Object> PartialEq for ByUid<T> {
    fn eq(&self, other: &Self) -> bool {
        self.uid() == other.uid()
    }
}

impl<T: Object> Eq for ByUid<T> {}

impl<T: Object> Borrow<str> for ByUid<T> {
    fn borrow(&self) -> &str {
        self.uid()
    }
}

/// One kind's objects and state.
struct KindStore<T> {
    objects: Mutex<HashSet<ByUid<T>>>,
    state: Mutex<KindState>,
}

impl<T> KindStore<T> {
    fn new() -> Self {
        KindStore {
            objects: Mutex::new(HashSet::new()),
            state: Mutex::new(KindState {
                status: ResourceStatus::Stopped,
                stats: ResourceStats::default(),
            }),
        }
    }
    fn objects(&self) -> MutexGuard<'_, HashSet<ByUid<T>>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (each operation is one insert/remove/swap), so poisoning is ignored.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn state(&self) -> MutexGuard<'_, KindState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn snapshot(&self) -> Vec<Arc<T>> {
        self.objects().iter().map(|o| o.0.clone()).collect()
    }
    fn clear(&self) {
        *self.objects() = HashSet::new();
        let mut st = self.state();
        st.stats.objects = 0;
        st.status = ResourceStatus::Stopped;
    }
}

/// The stores' contents at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub pods: Vec<Arc<Pod>>,
    pub nodes: Vec<Arc<Node>>,
    pub namespaces: Vec<Arc<Namespace>>,
    pub deployments: Vec<Arc<Deployment>>,
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    pub stateful_sets: Vec<Arc<StatefulSet>>,
    pub daemon_sets: Vec<Arc<DaemonSet>>,
    pub jobs: Vec<Arc<Job>>,
    pub cron_jobs: Vec<Arc<CronJob>>,
    pub services: Vec<Arc<Service>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    pub resource_quotas: Vec<Arc<ResourceQuota>>,
}

struct Inner {
    pods: KindStore<Pod>,
    nodes: KindStore<Node>,
    namespaces: KindStore<Namespace>,
    deployments: KindStore<Deployment>,
    replica_sets: KindStore<ReplicaSet>,
    stateful_sets: KindStore<StatefulSet>,
    daemon_sets: KindStore<DaemonSet>,
    jobs: KindStore<Job>,
    cron_jobs: KindStore<CronJob>,
    services: KindStore<Service>,
    endpoint_slices: KindStore<EndpointSlice>,
    resource_quotas: KindStore<ResourceQuota>,
    exclude: Box<[Box<str>]>,
}

trait Select: Object + Sized {
    fn store(inner: &Inner) -> &KindStore<Self>;
}

macro_rules! select {
    ($t:ty, $field:ident) => {
        impl Select for $t {
            fn store(inner: &Inner) -> &KindStore<Self> {
                &inner.$field
            }
        }
    };
}

select!(Pod, pods);
select!(Node, nodes);
select!(Namespace, namespaces);
select!(Deployment, deployments);
select!(ReplicaSet, replica_sets);
select!(StatefulSet, stateful_sets);
select!(DaemonSet, daemon_sets);
select!(Job, jobs);
select!(CronJob, cron_jobs);
select!(Service, services);
select!(EndpointSlice, endpoint_slices);
select!(ResourceQuota, resource_quotas);

impl Inner {
    fn state_of(&self, k: ResourceKind) -> MutexGuard<'_, KindState> {
        match k {
            ResourceKind::Pods => self.pods.state(),
            ResourceKind::Nodes => self.nodes.state(),
            ResourceKind::Namespaces => self.namespaces.state(),
            ResourceKind::Deployments => self.deployments.state(),
            ResourceKind::ReplicaSets => self.replica_sets.state(),
            ResourceKind::StatefulSets => self.stateful_sets.state(),
            ResourceKind::DaemonSets => self.daemon_sets.state(),
            ResourceKind::Jobs => self.jobs.state(),
            ResourceKind::CronJobs => self.cron_jobs.state(),
            ResourceKind::Services => self.services.state(),
            ResourceKind::EndpointSlices => self.endpoint_slices.state(),
            ResourceKind::ResourceQuotas => self.resource_quotas.state(),
        }
    }

    fn clear(&self, k: ResourceKind) {
        match k {
            ResourceKind::Pods => self.pods.clear(),
            ResourceKind::Nodes => self.nodes.clear(),
            ResourceKind::Namespaces => self.namespaces.clear(),
            ResourceKind::Deployments => self.deployments.clear(),
            ResourceKind::ReplicaSets => self.replica_sets.clear(),
            ResourceKind::StatefulSets => self.stateful_sets.clear(),
            ResourceKind::DaemonSets => self.daemon_sets.clear(),
            ResourceKind::Jobs => self.jobs.clear(),
            ResourceKind::CronJobs => self.cron_jobs.clear(),
            ResourceKind::Services => self.services.clear(),
            ResourceKind::EndpointSlices => self.endpoint_slices.clear(),
            ResourceKind::ResourceQuotas => self.resource_quotas.clear(),
        }
    }

    /// Whether an object is kept: not in (and not itself) an excluded namespace.
    fn keep(&self, kind: ResourceKind, meta: &Meta) -> bool {
        if self.exclude.is_empty() {
            return true;
        }
        let ns = match kind {
            ResourceKind::Namespaces => Some(&meta.name),
            _ => meta.namespace.as_ref(),
        };
        ns.is_none_or(|ns| !self.exclude.iter().any(|e| e == ns))
    }
}

/// A watch to run: the kind and its field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    kind: ResourceKind,
    fields: Option<String>,
    /// Human description of the scope, for logs: "on node n1" or "at cluster scope".
    scope: String,
}

/// The watch-backed stores. Dropping it stops every watch.
pub struct Stores {
    inner: Arc<Inner>,
    client: Client,
    scope: Scope,
    tasks: Mutex<Vec<(ResourceKind, bool, AbortHandle)>>,
}

impl Stores {
    /// Starts the node-local watches (this node's pods and Node). Must be called inside a
    /// tokio runtime; the watch tasks run on it.
    pub fn start(client: Client, scope: Scope) -> Stores {
        let inner = Arc::new(Inner {
            pods: KindStore::new(),
            nodes: KindStore::new(),
            namespaces: KindStore::new(),
            deployments: KindStore::new(),
            replica_sets: KindStore::new(),
            stateful_sets: KindStore::new(),
            daemon_sets: KindStore::new(),
            jobs: KindStore::new(),
            cron_jobs: KindStore::new(),
            services: KindStore::new(),
            endpoint_slices: KindStore::new(),
            resource_quotas: KindStore::new(),
            exclude: scope
                .exclude_namespaces
                .iter()
                .map(|s| s.as_str().into())
                .collect(),
        });
        let stores = Stores {
            inner,
            client,
            scope,
            tasks: Mutex::new(Vec::new()),
        };
        if stores.scope.node.is_none() && (stores.scope.collect.pods || stores.scope.collect.nodes)
        {
            tracing::warn!(
                "kubernetes: node name unknown (set collectors.kubernetes.node_name or NODE_NAME from the downward API): pods and nodes are watched cluster-wide, by the lease holder only"
            );
        }
        for plan in stores.plans(false) {
            stores.spawn(plan, false);
        }
        stores
    }

    /// Starts the cluster-wide watches (on gaining the lease). Idempotent.
    pub fn start_cluster_wide(&self) {
        if self.tasks().iter().any(|(_, cluster, _)| *cluster) {
            return;
        }
        for plan in self.plans(true) {
            self.spawn(plan, true);
        }
    }

    /// Stops the cluster-wide watches and empties their stores (on losing the lease), so
    /// a former leader neither exports nor holds cluster state.
    pub fn stop_cluster_wide(&self) {
        let mut tasks = self.tasks();
        tasks.retain(|(kind, cluster, handle)| {
            if *cluster {
                handle.abort();
                self.inner.clear(*kind);
            }
            !*cluster
        });
    }

    /// Whether the cluster-wide watches are running.
    pub fn cluster_wide_running(&self) -> bool {
        self.tasks().iter().any(|(_, cluster, _)| *cluster)
    }

    pub fn snapshot(&self) -> Snapshot {
        let i = &self.inner;
        Snapshot {
            pods: i.pods.snapshot(),
            nodes: i.nodes.snapshot(),
            namespaces: i.namespaces.snapshot(),
            deployments: i.deployments.snapshot(),
            replica_sets: i.replica_sets.snapshot(),
            stateful_sets: i.stateful_sets.snapshot(),
            daemon_sets: i.daemon_sets.snapshot(),
            jobs: i.jobs.snapshot(),
            cron_jobs: i.cron_jobs.snapshot(),
            services: i.services.snapshot(),
            endpoint_slices: i.endpoint_slices.snapshot(),
            resource_quotas: i.resource_quotas.snapshot(),
        }
    }

    pub fn status(&self) -> Vec<(ResourceKind, ResourceStatus)> {
        ResourceKind::ALL
            .iter()
            .map(|&k| (k, self.inner.state_of(k).status.clone()))
            .collect()
    }

    pub fn stats(&self) -> Vec<(ResourceKind, ResourceStats)> {
        ResourceKind::ALL
            .iter()
            .map(|&k| (k, self.inner.state_of(k).stats.clone()))
            .collect()
    }

    pub fn status_of(&self, kind: ResourceKind) -> ResourceStatus {
        self.inner.state_of(kind).status.clone()
    }

    pub fn stats_of(&self, kind: ResourceKind) -> ResourceStats {
        self.inner.state_of(kind).stats.clone()
    }

    /// Every started watch has completed a list (forbidden or failing ones have not).
    pub fn ready(&self) -> bool {
        ResourceKind::ALL.iter().all(|&k| {
            matches!(
                self.inner.state_of(k).status,
                ResourceStatus::Ready | ResourceStatus::Stopped
            )
        })
    }

    fn tasks(&self) -> MutexGuard<'_, Vec<(ResourceKind, bool, AbortHandle)>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The watches of one side: node-local (`cluster == false`) or cluster-wide.
    fn plans(&self, cluster: bool) -> Vec<Plan> {
        plans(&self.scope, cluster)
    }

    fn spawn(&self, plan: Plan, cluster: bool) {
        let kind = plan.kind;
        self.inner.state_of(kind).status = ResourceStatus::Syncing;
        let (inner, client) = (self.inner.clone(), self.client.clone());
        let handle = match kind {
            ResourceKind::Pods => tokio::spawn(run::<Pod>(client, inner, plan)),
            ResourceKind::Nodes => tokio::spawn(run::<Node>(client, inner, plan)),
            ResourceKind::Namespaces => tokio::spawn(run::<Namespace>(client, inner, plan)),
            ResourceKind::Deployments => tokio::spawn(run::<Deployment>(client, inner, plan)),
            ResourceKind::ReplicaSets => tokio::spawn(run::<ReplicaSet>(client, inner, plan)),
            ResourceKind::StatefulSets => tokio::spawn(run::<StatefulSet>(client, inner, plan)),
            ResourceKind::DaemonSets => tokio::spawn(run::<DaemonSet>(client, inner, plan)),
            ResourceKind::Jobs => tokio::spawn(run::<Job>(client, inner, plan)),
            ResourceKind::CronJobs => tokio::spawn(run::<CronJob>(client, inner, plan)),
            ResourceKind::Services => tokio::spawn(run::<Service>(client, inner, plan)),
            ResourceKind::EndpointSlices => tokio::spawn(run::<EndpointSlice>(client, inner, plan)),
            ResourceKind::ResourceQuotas => tokio::spawn(run::<ResourceQuota>(client, inner, plan)),
        }
        .abort_handle();
        self.tasks().push((kind, cluster, handle));
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        for (_, _, h) in self.tasks().drain(..) {
            h.abort();
        }
    }
}

fn plans(scope: &Scope, cluster: bool) -> Vec<Plan> {
    let c = scope.collect;
    let mut out = Vec::new();
    let mut add = |kind, fields: Option<String>, on_cluster: bool| {
        if on_cluster == cluster {
            let scope = match (&fields, on_cluster) {
                (Some(f), _) => format!("with fieldSelector {f}"),
                (None, _) => "at cluster scope".to_string(),
            };
            out.push(Plan {
                kind,
                fields,
                scope,
            });
        }
    };
    if c.pods {
        match (&scope.node, scope.node_local_pods) {
            (Some(node), true) => add(
                ResourceKind::Pods,
                Some(format!("spec.nodeName={node}")),
                false,
            ),
            _ => add(ResourceKind::Pods, None, true),
        }
    }
    if c.nodes {
        match &scope.node {
            Some(node) => add(
                ResourceKind::Nodes,
                Some(format!("metadata.name={node}")),
                false,
            ),
            None => add(ResourceKind::Nodes, None, true),
        }
    }
    if c.workloads {
        for k in [
            ResourceKind::Deployments,
            ResourceKind::ReplicaSets,
            ResourceKind::StatefulSets,
            ResourceKind::DaemonSets,
            ResourceKind::Jobs,
            ResourceKind::CronJobs,
        ] {
            add(k, None, true);
        }
    }
    if c.services {
        add(ResourceKind::Services, None, true);
        add(ResourceKind::EndpointSlices, None, true);
    }
    if c.namespaces {
        add(ResourceKind::Namespaces, None, true);
        add(ResourceKind::ResourceQuotas, None, true);
    }
    out
}

/// How one watcher error is counted and waited out.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    Expired,
    Forbidden { verb: &'static str, message: String },
    Transport,
    Decode,
    Other,
}

fn classify(e: &watcher::Error) -> (Class, bool) {
    use kube::Error as K;
    let (verb, err, is_list) = match e {
        watcher::Error::InitialListFailed(err) => ("list", err, true),
        watcher::Error::WatchStartFailed(err) => ("watch", err, false),
        watcher::Error::WatchFailed(err) => ("watch", err, false),
        watcher::Error::WatchError(status) => {
            let class = match status.code {
                410 => Class::Expired,
                403 => Class::Forbidden {
                    verb: "watch",
                    message: status.message.clone(),
                },
                500..=599 => Class::Transport,
                _ => Class::Other,
            };
            return (class, false);
        }
        // An object without a resourceVersion (kube relists).
        watcher::Error::NoResourceVersion => return (Class::Decode, false),
    };
    let class = match err {
        K::Api(status) if status.code == 410 => Class::Expired,
        K::Api(status) if status.code == 403 => Class::Forbidden {
            verb,
            message: status.message.clone(),
        },
        K::Api(status) if status.code >= 500 || status.code == 429 => Class::Transport,
        K::Api(_) => Class::Other,
        K::SerdeError(_) | K::FromUtf8(_) | K::LinesCodecMaxLineLengthExceeded => Class::Decode,
        _ => Class::Transport,
    };
    (class, is_list)
}

/// A pseudo-random fraction in [0, 1) for backoff jitter, so agents restarted together do
/// not retry in step. Not cryptographic; no dependency needed for this.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

async fn run<T: Select>(client: Client, inner: Arc<Inner>, plan: Plan) {
    let api: Api<Watched<T>> = Api::all(client);
    let mut cfg = watcher::Config::default().page_size(PAGE_SIZE);
    if let Some(f) = &plan.fields {
        cfg = cfg.fields(f);
    }
    let store = T::store(&inner);
    let kind = T::KIND;
    let mut stream = std::pin::pin!(watcher(api, cfg));
    let mut pending: Option<HashSet<ByUid<T>>> = None;
    let mut backoff = BACKOFF_MIN;
    let mut forbidden_logged = false;
    tracing::debug!(resource = %kind, scope = %plan.scope, "kubernetes: watch starting");
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(ev) => ev,
            Err(e) => {
                let (class, is_list) = classify(&e);
                let wait = {
                    let mut st = store.state();
                    st.stats.last_error = Some(e.to_string());
                    match &class {
                        Class::Expired => st.stats.expired += 1,
                        Class::Forbidden { .. } => st.stats.forbidden += 1,
                        Class::Transport => st.stats.transport += 1,
                        Class::Decode => st.stats.decode += 1,
                        Class::Other => st.stats.other += 1,
                    }
                    match class {
                        // kube relists on the next poll; nothing to wait for.
                        Class::Expired => Duration::ZERO,
                        Class::Forbidden { verb, message } => {
                            let resource = kind.rbac_name().into_owned();
                            if !forbidden_logged {
                                forbidden_logged = true;
                                tracing::warn!(
                                    "kubernetes: cannot {verb} {kind} {}: forbidden (RBAC: grant get/list/watch on {resource}); retrying every {}s: {message}",
                                    plan.scope,
                                    FORBIDDEN_RETRY.as_secs()
                                );
                            }
                            st.status = ResourceStatus::Forbidden {
                                verb: verb.to_string(),
                                resource,
                                message,
                            };
                            pending = None;
                            FORBIDDEN_RETRY
                        }
                        _ => {
                            // A failed list leaves the store without a complete view; a
                            // broken watch stream is resumed by kube without one.
                            if is_list || st.status != ResourceStatus::Ready {
                                st.status = ResourceStatus::Failing {
                                    error: e.to_string(),
                                };
                            }
                            if is_list {
                                pending = None;
                            }
                            tracing::debug!(resource = %kind, error = %e, "kubernetes: watch error");
                            let w = backoff.mul_f64(0.5 + jitter());
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            w
                        }
                    }
                };
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                continue;
            }
        };
        match event {
            watcher::Event::Init => pending = Some(HashSet::new()),
            watcher::Event::InitApply(w) => {
                if let Some(p) = pending.as_mut() {
                    apply(&inner, store, w, |obj| {
                        p.replace(ByUid(obj));
                    });
                }
            }
            watcher::Event::InitDone => {
                let fresh = pending.take().unwrap_or_default();
                let n = fresh.len() as u64;
                *store.objects() = fresh;
                let mut st = store.state();
                st.stats.relists += 1;
                st.stats.objects = n;
                if st.status != ResourceStatus::Ready {
                    if forbidden_logged || matches!(st.status, ResourceStatus::Failing { .. }) {
                        tracing::info!(
                            "kubernetes: {kind} {}: listed {n} objects, watching",
                            plan.scope
                        );
                    }
                    forbidden_logged = false;
                    st.status = ResourceStatus::Ready;
                }
                backoff = BACKOFF_MIN;
            }
            watcher::Event::Apply(w) => {
                let mut map = store.objects();
                let removed_uid = match &w.obj {
                    Ok(obj) if !inner.keep(kind, obj.meta()) => Some(obj.meta().uid.clone()),
                    _ => None,
                };
                if let Some(uid) = removed_uid {
                    map.remove(&*uid);
                }
                apply(&inner, store, w, |obj| {
                    map.replace(ByUid(obj));
                });
                let n = map.len() as u64;
                drop(map);
                let mut st = store.state();
                st.stats.objects = n;
                st.status = ResourceStatus::Ready;
                backoff = BACKOFF_MIN;
            }
            watcher::Event::Delete(w) => {
                let uid = match &w.obj {
                    Ok(obj) => Some(obj.meta().uid.clone()),
                    Err(m) => m.uid.clone(),
                };
                let mut map = store.objects();
                if let Some(uid) = uid {
                    map.remove(&*uid);
                }
                let n = map.len() as u64;
                drop(map);
                store.state().stats.objects = n;
            }
        }
    }
}

/// Stores a parsed, non-excluded object through `put`; counts the rest.
fn apply<T: Object>(inner: &Inner, store: &KindStore<T>, w: Watched<T>, put: impl FnOnce(Arc<T>)) {
    match w.obj {
        Ok(obj) => {
            if inner.keep(T::KIND, obj.meta()) {
                put(obj);
            } else {
                store.state().stats.excluded += 1;
            }
        }
        Err(m) => {
            let mut st = store.state();
            st.stats.malformed += 1;
            if st.stats.malformed == 1 || st.stats.malformed.is_power_of_two() {
                tracing::warn!(
                    "kubernetes: skipped a malformed {} object {} ({} so far): {}",
                    T::KIND.gvk().0,
                    w.meta.name.as_deref().unwrap_or("(unnamed)"),
                    st.stats.malformed,
                    m.error
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(node: Option<&str>, local: bool) -> Scope {
        Scope {
            node: node.map(String::from),
            node_local_pods: local,
            ..Scope::default()
        }
    }

    #[test]
    fn plans_split_node_local_and_cluster_wide() {
        let mut s = scope(Some("n1"), true);
        s.collect = Collect::default();
        let local = plans(&s, false);
        assert_eq!(
            local
                .iter()
                .map(|p| (p.kind, p.fields.as_deref()))
                .collect::<Vec<_>>(),
            vec![
                (ResourceKind::Pods, Some("spec.nodeName=n1")),
                (ResourceKind::Nodes, Some("metadata.name=n1"))
            ]
        );
        let cluster: Vec<_> = plans(&s, true).into_iter().map(|p| p.kind).collect();
        assert_eq!(cluster.len(), 10);
        assert!(!cluster.contains(&ResourceKind::Pods));
        s.node_local_pods = false;
        assert!(
            plans(&s, true)
                .iter()
                .any(|p| p.kind == ResourceKind::Pods && p.fields.is_none())
        );
        let s = scope(None, true);
        assert!(plans(&s, false).is_empty());
    }

    #[test]
    fn watched_keeps_malformed_objects_as_values() {
        let items: Vec<Watched<Pod>> = serde_json::from_str(
            r#"[{"metadata":{"name":"a","uid":"1","resourceVersion":"5"}},
                {"metadata":{"name":"b","uid":"2","resourceVersion":"6"},"spec":{"containers":[{"resources":{"requests":{"cpu":"x"}}}]}},
                {"metadata":7}]"#,
        )
        .unwrap();
        assert!(items[0].obj.is_ok());
        assert_eq!(items[0].meta.resource_version.as_deref(), Some("5"));
        let m = items[1].obj.as_ref().unwrap_err();
        assert_eq!(m.uid.as_deref(), Some("2"));
        assert_eq!(items[1].meta.resource_version.as_deref(), Some("6"));
        assert!(items[2].obj.is_err());
        assert_eq!(items[2].meta.resource_version, None);
        assert!(serde_json::from_str::<Vec<Watched<Pod>>>("[{]").is_err());
    }

    #[test]
    fn rbac_names() {
        assert_eq!(ResourceKind::Pods.rbac_name(), "pods");
        assert_eq!(ResourceKind::Deployments.rbac_name(), "deployments.apps");
        assert_eq!(
            ResourceKind::EndpointSlices.rbac_name(),
            "endpointslices.discovery.k8s.io"
        );
    }
}
