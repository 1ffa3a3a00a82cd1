//! The events watcher the leader runs: core/v1 Events cluster-wide, de-duplicated, handed
//! to the agent on a bounded channel.
//!
//! ## No event exported twice for the same count
//!
//! An event is identified by `(uid, occurrences)`: a repeated event keeps its uid and bumps
//! its count, and each bump is a new occurrence worth a record.
//!
//! - **Within one leadership term** the de-duplicator remembers, per uid, the highest count
//!   it emitted. Relists (after a 410 Gone or a dropped watch) re-deliver every event; those
//!   already emitted at that count are skipped. Entries go on DELETED, and on the end of a
//!   relist for uids the relist no longer contained. The map is bounded
//!   ([`EventsConfig::max_tracked`]); past it the tenth of entries least recently seen is
//!   evicted and anything not newer than them is treated as already exported.
//! - **Across leader changes** the Lease carries a watermark (annotation
//!   [`crate::lease::WATERMARK_ANNOTATION`]), advanced only by [`EventsHandle::ack`], i.e.
//!   after the agent made the records durable. Format, JSON:
//!   `{"t":<unix nanos>,"k":["<uid>:<count>",...]}`: `t` is the newest `last_seen` of an
//!   acknowledged event, `k` the keys acknowledged with exactly that `last_seen` (capped at
//!   [`MAX_WATERMARK_KEYS`]; beyond it an event at that very instant may be exported again on
//!   takeover, a duplicate rather than a loss). A new leader skips an event whose
//!   `last_seen < t`, or `== t` with its key in `k`.
//!
//!   The watermark is a cut in time: an event the old leader emitted out of time order
//!   and that was not yet durable when it died, older than a newer durable one, is skipped
//!   by the next leader. Events of a relist arrive in one burst and are made durable
//!   together, so in practice this needs the leader to die inside that burst.
//! - **First start** (no watermark in the Lease, e.g. a new cluster or a new lease name):
//!   only events last seen within [`EventsConfig::first_start_lookback`] (5 min) before the
//!   watcher started are exported. The API server keeps events for an hour by default;
//!   exporting that whole backlog every time the Lease is recreated would flood the logs
//!   pipeline with history, while a few minutes covers the events around the agent's own
//!   rollout (which is when a Lease is new).
//!
//! Namespaces in [`EventsConfig::exclude_namespaces`] are filtered here, by the event's
//! namespace, rather than with a field selector, so the watch stays a plain
//! `GET /api/v1/events?watch=1` that every API server version (and the fake) serves.
//!
//! Emitted events wait for room on the channel when it is full (backpressure on the watch,
//! counted in [`EventsStats::backpressure_waits`]); none is dropped.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::lease::LeaseHandle;
use crate::model::event::{Event, UnixNanos};

/// Most keys a watermark keeps for its instant: bounds the annotation to ~50 KB, well under
/// the API's 256 KiB limit on all annotations of an object.
pub const MAX_WATERMARK_KEYS: usize = 1024;

/// Settings of the events watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Events in these namespaces are not exported.
    pub exclude_namespaces: Vec<String>,
    /// Capacity of the channel to the agent (1024).
    pub channel_capacity: usize,
    /// At first start without a watermark, how far back to export (5 min).
    pub first_start_lookback: Duration,
    /// Bound of the per-uid map of emitted counts (50,000 entries, ~6 MB at most).
    pub max_tracked: usize,
    /// List page size (500).
    pub page_size: u32,
}

impl Default for EventsConfig {
    fn default() -> EventsConfig {
        EventsConfig {
            exclude_namespaces: Vec::new(),
            channel_capacity: 1024,
            first_start_lookback: Duration::from_secs(300),
            max_tracked: 50_000,
            page_size: 500,
        }
    }
}

/// What the agent acknowledges once an event's record is durable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub uid: String,
    pub count: u32,
    /// `Event::last_seen`, 0 when the event carries no time at all.
    pub last_seen: UnixNanos,
}

impl EventKey {
    pub fn of(e: &Event) -> EventKey {
        EventKey {
            uid: uid_of(e).into_owned(),
            count: e.occurrences(),
            last_seen: e.last_seen().unwrap_or(0),
        }
    }

    fn id(&self) -> String {
        format!("{}:{}", self.uid, self.count)
    }
}

/// An event's identity: its uid, or namespace/name for a hand-made object without one.
fn uid_of(e: &Event) -> Cow<'_, str> {
    if e.metadata.uid.is_empty() {
        Cow::Owned(format!("{}/{}", e.metadata.namespace, e.metadata.name))
    } else {
        Cow::Borrowed(&e.metadata.uid)
    }
}

/// The events watermark; see the module docs for its meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    #[serde(rename = "t")]
    pub time: UnixNanos,
    #[serde(rename = "k", default)]
    pub keys: BTreeSet<String>,
}

impl Watermark {
    /// Parses the annotation; anything malformed reads as no watermark (and is logged).
    pub fn parse(s: &str) -> Option<Watermark> {
        match serde_json::from_str(s) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("ignoring a malformed events watermark in the lease: {e}");
                None
            }
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising a struct of an integer and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether an event with this key was exported by the writer of the watermark.
    fn covers(&self, last_seen: UnixNanos, id: &str) -> bool {
        last_seen < self.time || (last_seen == self.time && self.keys.contains(id))
    }

    /// Adds an acknowledged key; returns whether the watermark changed.
    fn advance(&mut self, key: &EventKey) -> bool {
        if key.last_seen > self.time {
            self.time = key.last_seen;
            self.keys.clear();
            self.keys.insert(key.id());
            true
        } else if key.last_seen == self.time && self.keys.len() < MAX_WATERMARK_KEYS {
            self.keys.insert(key.id())
        } else {
            false
        }
    }
}

/// Why an offered event was or was not emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New, or a higher count: export it.
    New,
    /// Already emitted at this count in this term.
    Duplicate,
    /// Covered by the watermark of a previous leader.
    BeforeWatermark,
    /// First start: older than the lookback.
    TooOld,
    /// Excluded namespace.
    Excluded,
}

/// The de-duplication state, independent of the API client (tested directly).
#[derive(Debug)]
pub struct Dedup {
    /// The watermark read on takeover: what earlier leaders exported.
    floor: Option<Watermark>,
    /// At first start without a watermark: nothing last seen before this is exported.
    min_time: Option<UnixNanos>,
    /// uid -> (highest count emitted, its last_seen).
    emitted: HashMap<String, (u32, UnixNanos)>,
    max_tracked: usize,
    /// Events not newer than this were evicted from `emitted`: treated as emitted.
    evicted_up_to: Option<UnixNanos>,
    /// uids seen since the current relist began.
    relist: Option<HashSet<String>>,
    /// The acknowledged watermark, written into the Lease.
    acked: Watermark,
    exclude: HashSet<String>,
}

impl Dedup {
    /// `watermark`: the Lease annotation, if any; `now`: the watcher's start time.
    pub fn new(watermark: Option<&str>, now: UnixNanos, cfg: &EventsConfig) -> Dedup {
        let floor = watermark.and_then(Watermark::parse);
        let lookback = i64::try_from(cfg.first_start_lookback.as_nanos()).unwrap_or(i64::MAX);
        let min_time = floor.is_none().then(|| now.saturating_sub(lookback));
        Dedup {
            acked: floor.clone().unwrap_or_default(),
            floor,
            min_time,
            emitted: HashMap::new(),
            max_tracked: cfg.max_tracked.max(10),
            evicted_up_to: None,
            relist: None,
            exclude: cfg.exclude_namespaces.iter().cloned().collect(),
        }
    }

    /// Decides whether `e` is exported, and remembers it if so.
    pub fn offer(&mut self, e: &Event) -> Verdict {
        if self.exclude.contains(&e.metadata.namespace) {
            return Verdict::Excluded;
        }
        let uid = uid_of(e);
        if let Some(seen) = self.relist.as_mut() {
            seen.insert(uid.clone().into_owned());
        }
        let count = e.occurrences();
        let last_seen = e.last_seen();
        if let Some(&(c, _)) = self.emitted.get(uid.as_ref()) {
            if count <= c {
                return Verdict::Duplicate;
            }
        } else if let Some(t) = last_seen {
            if let Some(floor) = &self.floor {
                let id = format!("{uid}:{count}");
                if floor.covers(t, &id) {
                    return Verdict::BeforeWatermark;
                }
            }
            if self.min_time.is_some_and(|m| t < m) {
                return Verdict::TooOld;
            }
            if self.evicted_up_to.is_some_and(|m| t <= m) {
                return Verdict::Duplicate;
            }
        }
        self.emitted
            .insert(uid.into_owned(), (count, last_seen.unwrap_or(0)));
        if self.emitted.len() > self.max_tracked {
            self.evict();
        }
        Verdict::New
    }

    /// DELETED: the event is gone; a later one with the same uid cannot exist.
    pub fn deleted(&mut self, e: &Event) {
        self.emitted.remove(uid_of(e).as_ref());
    }

    /// A relist began: track which uids it contains.
    pub fn relist_started(&mut self) {
        self.relist = Some(HashSet::new());
    }

    /// A relist ended: forget uids that were deleted while the watch was down.
    pub fn relist_done(&mut self) {
        if let Some(seen) = self.relist.take() {
            self.emitted.retain(|uid, _| seen.contains(uid));
        }
    }

    /// Records durable events; returns the new watermark JSON if it moved.
    pub fn ack(&mut self, keys: &[EventKey]) -> Option<String> {
        let mut changed = false;
        for k in keys {
            changed |= self.acked.advance(k);
        }
        changed.then(|| self.acked.to_json())
    }

    /// The acknowledged watermark (JSON).
    pub fn watermark(&self) -> String {
        self.acked.to_json()
    }

    /// Entries currently tracked.
    pub fn tracked(&self) -> usize {
        self.emitted.len()
    }

    fn evict(&mut self) {
        let mut times: Vec<UnixNanos> = self.emitted.values().map(|v| v.1).collect();
        let nth = times.len() / 10;
        let (_, cut, _) = times.select_nth_unstable(nth);
        let cut = *cut;
        self.emitted.retain(|_, v| v.1 > cut);
        self.evicted_up_to = Some(self.evicted_up_to.map_or(cut, |m| m.max(cut)));
    }
}

/// Counters of the events watcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsStats {
    /// Events handed to the agent.
    pub emitted: u64,
    /// Skipped: already emitted at that count (relists, duplicates).
    pub duplicates: u64,
    /// Skipped: covered by the previous leader's watermark.
    pub before_watermark: u64,
    /// Skipped: first start, older than the lookback.
    pub too_old: u64,
    /// Skipped: excluded namespace.
    pub excluded: u64,
    /// Times an emit found the channel full and waited.
    pub backpressure_waits: u64,
    /// Watch or decode errors (the watcher backs off and relists).
    pub watch_errors: u64,
}

#[derive(Default)]
struct Counters {
    emitted: AtomicU64,
    duplicates: AtomicU64,
    before_watermark: AtomicU64,
    too_old: AtomicU64,
    excluded: AtomicU64,
    backpressure_waits: AtomicU64,
    watch_errors: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> EventsStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EventsStats {
            emitted: l(&self.emitted),
            duplicates: l(&self.duplicates),
            before_watermark: l(&self.before_watermark),
            too_old: l(&self.too_old),
            excluded: l(&self.excluded),
            backpressure_waits: l(&self.backpressure_waits),
            watch_errors: l(&self.watch_errors),
        }
    }
}

/// The running watcher: acknowledgements, counters; dropping it stops the watch.
pub struct EventsHandle {
    dedup: Arc<Mutex<Dedup>>,
    counters: Arc<Counters>,
    lease: Option<LeaseHandle>,
    task: JoinHandle<()>,
}

impl EventsHandle {
    /// The agent made these events durable: advance the watermark (and hand it to the
    /// elector, which writes it into the Lease on its next renewal).
    pub fn ack(&self, keys: &[EventKey]) {
        let new = lock(&self.dedup).ack(keys);
        if let (Some(w), Some(lease)) = (new, &self.lease) {
            lease.set_watermark(w);
        }
    }

    pub fn stats(&self) -> EventsStats {
        self.counters.snapshot()
    }

    /// The acknowledged watermark (JSON).
    pub fn watermark(&self) -> String {
        lock(&self.dedup).watermark()
    }

    /// Stops the watch (also done on drop).
    pub fn stop(self) {}
}

impl Drop for EventsHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Nanoseconds since the epoch, now.
fn unix_now() -> UnixNanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Starts watching events cluster-wide on the current tokio runtime. The watermark is taken
/// from `lease` (call this after it reported leadership); acks are handed back to it.
pub fn spawn(
    client: kube::Client,
    cfg: EventsConfig,
    lease: Option<LeaseHandle>,
) -> (EventsHandle, mpsc::Receiver<Event>) {
    let watermark = lease.as_ref().and_then(|l| l.watermark());
    let dedup = Arc::new(Mutex::new(Dedup::new(
        watermark.as_deref(),
        unix_now(),
        &cfg,
    )));
    let counters = Arc::new(Counters::default());
    let (tx, rx) = mpsc::channel(cfg.channel_capacity.max(1));
    let api: Api<WatchedEvent> = Api::all(client);
    let wc = watcher::Config::default().page_size(cfg.page_size.max(1));
    let task = tokio::spawn(run(api, wc, dedup.clone(), counters.clone(), tx));
    (
        EventsHandle {
            dedup,
            counters,
            lease,
            task,
        },
        rx,
    )
}

async fn run(
    api: Api<WatchedEvent>,
    wc: watcher::Config,
    dedup: Arc<Mutex<Dedup>>,
    counters: Arc<Counters>,
    tx: mpsc::Sender<Event>,
) {
    let stream = watcher(api, wc).default_backoff();
    futures_util::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let ev = match item {
            Ok(ev) => ev,
            Err(e) => {
                Counters::bump(&counters.watch_errors);
                tracing::warn!("events watch: {e}");
                continue;
            }
        };
        let obj = match ev {
            watcher::Event::Init => {
                lock(&dedup).relist_started();
                continue;
            }
            watcher::Event::InitDone => {
                lock(&dedup).relist_done();
                continue;
            }
            watcher::Event::Delete(w) => {
                lock(&dedup).deleted(&w.event);
                continue;
            }
            watcher::Event::Apply(w) | watcher::Event::InitApply(w) => w.event,
        };
        let verdict = lock(&dedup).offer(&obj);
        let counter = match verdict {
            Verdict::New => None,
            Verdict::Duplicate => Some(&counters.duplicates),
            Verdict::BeforeWatermark => Some(&counters.before_watermark),
            Verdict::TooOld => Some(&counters.too_old),
            Verdict::Excluded => Some(&counters.excluded),
        };
        if let Some(c) = counter {
            Counters::bump(c);
            continue;
        }
        let obj = match tx.try_send(obj) {
            Ok(()) => {
                Counters::bump(&counters.emitted);
                continue;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(obj)) => obj,
        };
        Counters::bump(&counters.backpressure_waits);
        if tx.send(obj).await.is_err() {
            return;
        }
        Counters::bump(&counters.emitted);
    }
}

/// The slim event as a `kube` resource: the watcher needs `ObjectMeta` for resource
/// versions; the rest stays in the model type.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "Event")]
struct WatchedEvent {
    meta: ObjectMeta,
    event: Event,
}

impl From<Event> for WatchedEvent {
    fn from(event: Event) -> WatchedEvent {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let m = &event.metadata;
        WatchedEvent {
            meta: ObjectMeta {
                name: some(&m.name),
                namespace: some(&m.namespace),
                uid: some(&m.uid),
                resource_version: some(&m.resource_version),
                ..ObjectMeta::default()
            },
            event,
        }
    }
}

impl kube::Resource for WatchedEvent {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Event".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "events".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixNanos = 1_709_287_200_000_000_000;
    const S: UnixNanos = 1_000_000_000;

    fn ev(uid: &str, ns: &str, count: i32, last_seen: UnixNanos) -> Event {
        let mut e = Event::default();
        e.metadata.uid = uid.into();
        e.metadata.namespace = ns.into();
        e.metadata.name = format!("{uid}.x");
        e.count = count;
        e.last_timestamp = Some(last_seen);
        e
    }

    fn cfg() -> EventsConfig {
        EventsConfig {
            exclude_namespaces: vec!["kube-system".into()],
            ..EventsConfig::default()
        }
    }

    #[test]
    fn relist_emits_nothing_new_and_count_increase_reexports() {
        let mut d = Dedup::new(None, T0, &cfg());
        assert_eq!(d.offer(&ev("a", "x", 1, T0)), Verdict::New);
        assert_eq!(d.offer(&ev("b", "x", 1, T0)), Verdict::New);
        // Relist: both re-delivered, nothing new.
        d.relist_started();
        assert_eq!(d.offer(&ev("a", "x", 1, T0)), Verdict::Duplicate);
        assert_eq!(d.offer(&ev("b", "x", 1, T0)), Verdict::Duplicate);
        d.relist_done();
        // The count goes up: a new occurrence, exported once.
        assert_eq!(d.offer(&ev("a", "x", 2, T0 + S)), Verdict::New);
        assert_eq!(d.offer(&ev("a", "x", 2, T0 + S)), Verdict::Duplicate);
        // A stale copy with a lower count is not an occurrence.
        assert_eq!(d.offer(&ev("a", "x", 1, T0)), Verdict::Duplicate);
        assert_eq!(d.offer(&ev("c", "kube-system", 1, T0)), Verdict::Excluded);
    }

    #[test]
    fn deletions_and_relists_bound_the_map() {
        let mut d = Dedup::new(None, T0, &cfg());
        for u in ["a", "b", "c"] {
            assert_eq!(d.offer(&ev(u, "x", 1, T0)), Verdict::New);
        }
        d.deleted(&ev("a", "x", 1, T0));
        assert_eq!(d.tracked(), 2);
        // "c" was deleted while the watch was down: the relist no longer has it.
        d.relist_started();
        assert_eq!(d.offer(&ev("b", "x", 1, T0)), Verdict::Duplicate);
        d.relist_done();
        assert_eq!(d.tracked(), 1);
    }

    #[test]
    fn eviction_keeps_the_newest_and_skips_the_evicted() {
        let c = EventsConfig {
            max_tracked: 100,
            ..cfg()
        };
        let mut d = Dedup::new(None, T0, &c);
        for i in 0..=100 {
            assert_eq!(
                d.offer(&ev(&format!("u{i}"), "x", 1, T0 + i * S)),
                Verdict::New
            );
        }
        assert!(d.tracked() <= 100 && d.tracked() >= 80, "{}", d.tracked());
        // An evicted one redelivered by a relist is not exported again.
        assert_eq!(d.offer(&ev("u0", "x", 1, T0)), Verdict::Duplicate);
        assert_eq!(
            d.offer(&ev("u100", "x", 1, T0 + 100 * S)),
            Verdict::Duplicate
        );
    }

    #[test]
    fn first_start_lookback() {
        let mut d = Dedup::new(None, T0, &cfg());
        assert_eq!(d.offer(&ev("old", "x", 3, T0 - 301 * S)), Verdict::TooOld);
        assert_eq!(d.offer(&ev("recent", "x", 1, T0 - 299 * S)), Verdict::New);
        // An old event that recurs now is exported.
        assert_eq!(d.offer(&ev("old", "x", 4, T0)), Verdict::New);
        // No time at all: cannot be ordered, exported once.
        let mut none = ev("none", "x", 1, 0);
        none.last_timestamp = None;
        assert_eq!(d.offer(&none), Verdict::New);
        assert_eq!(d.offer(&none), Verdict::Duplicate);
    }

    #[test]
    fn takeover_skips_what_the_previous_leader_acked() {
        // Leader 1 exports three events and acks two of them.
        let mut l1 = Dedup::new(None, T0, &cfg());
        let a = ev("a", "x", 1, T0);
        let b = ev("b", "x", 5, T0 + S);
        let c = ev("c", "x", 1, T0 + S);
        let late = ev("d", "x", 1, T0 + 2 * S);
        for e in [&a, &b, &c, &late] {
            assert_eq!(l1.offer(e), Verdict::New);
        }
        let w = l1
            .ack(&[EventKey::of(&a), EventKey::of(&b)])
            .expect("watermark moved");
        assert_eq!(
            Watermark::parse(&w).unwrap(),
            Watermark {
                time: T0 + S,
                keys: ["b:5".to_string()].into()
            }
        );
        assert_eq!(
            l1.ack(&[EventKey::of(&a)]),
            None,
            "older acks do not move it"
        );

        // Leader 2 takes over much later: no lookback applies with a watermark.
        let mut l2 = Dedup::new(Some(&w), T0 + 3600 * S, &cfg());
        assert_eq!(l2.offer(&a), Verdict::BeforeWatermark);
        assert_eq!(l2.offer(&b), Verdict::BeforeWatermark);
        // Same second as the watermark but not acknowledged: the tie goes to exporting.
        assert_eq!(l2.offer(&c), Verdict::New);
        assert_eq!(l2.offer(&late), Verdict::New);
        // b recurs after the watermark.
        assert_eq!(l2.offer(&ev("b", "x", 6, T0 + 5 * S)), Verdict::New);
        // The new leader's watermark starts from the old one.
        assert_eq!(Watermark::parse(&l2.watermark()).unwrap().time, T0 + S);
        let w2 = l2.ack(&[EventKey::of(&c)]).unwrap();
        let w2 = Watermark::parse(&w2).unwrap();
        assert_eq!(w2.keys, ["b:5".to_string(), "c:1".to_string()].into());
    }

    #[test]
    fn malformed_watermark_is_first_start() {
        let mut d = Dedup::new(Some("{not json"), T0, &cfg());
        assert_eq!(d.offer(&ev("old", "x", 1, T0 - 3600 * S)), Verdict::TooOld);
    }

    #[test]
    fn watermark_keys_are_capped() {
        let mut w = Watermark::default();
        for i in 0..MAX_WATERMARK_KEYS + 10 {
            w.advance(&EventKey {
                uid: format!("u{i}"),
                count: 1,
                last_seen: T0,
            });
        }
        assert_eq!(w.keys.len(), MAX_WATERMARK_KEYS);
        assert!(w.to_json().len() < 64 * 1024);
    }

    #[test]
    fn watched_event_decodes_from_api_json() {
        let w: WatchedEvent = serde_json::from_str(
            r#"{"metadata":{"name":"n","namespace":"ns","uid":"u","resourceVersion":"9"},
                "reason":"Pulled","count":2}"#,
        )
        .unwrap();
        use kube::Resource;
        assert_eq!(w.meta().resource_version.as_deref(), Some("9"));
        assert_eq!(w.event.reason, "Pulled");
        assert_eq!(WatchedEvent::url_path(&(), None), "/api/v1/events");
    }
}
