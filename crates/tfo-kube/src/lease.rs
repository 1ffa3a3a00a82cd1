//! Leader election on a `coordination.k8s.io/v1` Lease, so one agent of a DaemonSet
//! reports cluster-wide state and events.
//!
//! The protocol is client-go's `leaderelection` with a Lease lock:
//!
//! - **Acquire** when the Lease does not exist (create), when its holder is empty (a
//!   graceful release), when we already hold it, or when it has expired. Expiry is judged
//!   on *our* monotonic clock: the candidate remembers when it last saw the record change
//!   (holder, renewTime, transitions, ...) and treats the lease as expired once
//!   `leaseDurationSeconds` have passed since then without a change. The wall-clock
//!   `renewTime` written by the holder is only compared for equality, so clock skew between
//!   nodes does not matter.
//! - **Renew** every `retry_period` while leader (a replace carrying the read
//!   `resourceVersion`, so two writers cannot both win). If no renewal succeeds within
//!   `renew_deadline` of the last successful one, the leader **steps down** (the watch
//!   channel goes `false`) before anyone else can consider the lease expired.
//! - A 409 Conflict (someone wrote in between, or created the Lease first) re-reads and
//!   retries at once, a few times; any other API error makes this round fail: not leader
//!   (or, for the leader, a renewal failure) and retry after `retry_period`.
//! - `leaseTransitions` is incremented whenever the holder changes to us.
//! - On a graceful stop the leader **releases**: it steps down, then writes an empty holder
//!   so the next candidate takes over at its next poll instead of waiting for expiry.
//!
//! The identity is stable per node (the node name): an agent restarted on the same node finds
//! its own name in the Lease and re-takes it at once, without waiting for expiry.
//!
//! ## Timing
//!
//! With `L` = lease_duration (15 s), `D` = renew_deadline (10 s), `R` = retry_period (2 s):
//!
//! - **Takeover after the leader dies** (killed, node lost): at most `L + R` plus one API
//!   round trip. The leader's last renewal happened at or before its death; a candidate polls
//!   every `R`, so it sees that renewal at most `R` later, and it schedules its next attempt
//!   for the moment the lease expires on its clock (`L` after that observation), not on the
//!   next multiple of `R`.
//! - **After a graceful stop**: at most `R` (the release empties the holder).
//! - **Split brain**: the old leader stops acting at most `D` after the *start* of its last
//!   successful renewal; a new leader can acquire no earlier than `L` after it *observed*
//!   that renewal, which is after the renewal was written. So there is a gap of at least
//!   `L - D` (5 s) with no leader, which absorbs the time the old leader's watchers need to
//!   stop and any difference in clock rates. Two agents can act at once only if one is
//!   frozen (SIGSTOP, a stalled VM) for more than `L - D` between deciding to act and acting;
//!   the cluster state or events it then exports twice are duplicates, never losses.
//!
//! ## Events watermark
//!
//! The Lease also carries the events de-duplicator's watermark in the annotation
//! [`WATERMARK_ANNOTATION`]: the leader writes the latest value given to
//! [`LeaseHandle::set_watermark`] on every renewal, and a new leader reads it when it takes
//! over, before it reports leadership, so [`LeaseHandle::watermark`] is ready before the
//! events watcher starts.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// The Lease annotation holding the events watermark (see [`crate::events`]).
pub const WATERMARK_ANNOTATION: &str = "telemetryflow.io/events-watermark";

/// How many times one round re-reads and retries after a 409 Conflict. More than one
/// conflict in a row means another writer is active; the next round retries anyway.
const CONFLICT_RETRIES: usize = 3;

/// Election settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name (`tfo-agent-cluster`).
    pub name: String,
    /// Lease namespace (the agent's own).
    pub namespace: String,
    /// This agent's identity in `holderIdentity`: the node name, stable across restarts.
    pub identity: String,
    /// How long a lease is valid after its last renewal, as others see it.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renewal.
    pub renew_deadline: Duration,
    /// Interval between attempts, for the leader and for candidates.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Settings with client-go's default timing (15 s / 10 s / 2 s).
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> LeaseConfig {
        LeaseConfig {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks the ordering the split-brain bound rests on.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.namespace.is_empty() {
            return Err("lease name and namespace must not be empty".into());
        }
        if self.identity.is_empty() {
            return Err("lease identity (the node name) must not be empty".into());
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err("lease_duration must be at least 1s (the Lease stores seconds)".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err("renew_deadline must be shorter than lease_duration".into());
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err("retry_period must be positive and shorter than renew_deadline".into());
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// Counters of one elector, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Times this agent became leader.
    pub acquired: u64,
    /// Times it stopped being leader (renew deadline passed, lease taken, or released).
    pub lost: u64,
    /// Renewal rounds that failed while leader.
    pub renew_failures: u64,
    /// 409 Conflict replies to create or replace.
    pub conflicts: u64,
    /// Other failed API calls, including timeouts.
    pub api_errors: u64,
}

impl LeaseStats {
    /// Leadership transitions of this agent (both directions).
    pub fn transitions(&self) -> u64 {
        self.acquired + self.lost
    }
}

#[derive(Default)]
struct Counters {
    acquired: AtomicU64,
    lost: AtomicU64,
    renew_failures: AtomicU64,
    conflicts: AtomicU64,
    api_errors: AtomicU64,
}

struct Shared {
    leader: watch::Sender<bool>,
    watermark: Mutex<Option<String>>,
    counters: Counters,
}

/// A cheap, cloneable view of the elector: leadership, counters and the events watermark.
#[derive(Clone)]
pub struct LeaseHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LeaseHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseHandle")
            .field("leader", &self.is_leader())
            .finish()
    }
}

impl LeaseHandle {
    pub fn is_leader(&self) -> bool {
        *self.shared.leader.borrow()
    }

    /// Leadership as a watch channel: `true` while this agent holds the lease.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.shared.leader.subscribe()
    }

    /// The value the leader writes into the Lease on its next renewal.
    pub fn set_watermark(&self, watermark: String) {
        *lock(&self.shared.watermark) = Some(watermark);
    }

    /// The current watermark: after a takeover, the one read from the Lease (set before
    /// the leadership channel turns `true`), later the last one given to `set_watermark`.
    pub fn watermark(&self) -> Option<String> {
        lock(&self.shared.watermark).clone()
    }

    pub fn stats(&self) -> LeaseStats {
        let c = &self.shared.counters;
        LeaseStats {
            acquired: c.acquired.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            renew_failures: c.renew_failures.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            api_errors: c.api_errors.load(Ordering::Relaxed),
        }
    }
}

/// A poisoned lock only means another thread panicked while holding a `String`; the value
/// is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The record as last seen, and when we saw it change (our monotonic clock).
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

enum Round {
    /// We hold the lease (acquired or renewed).
    Leader,
    /// Someone else holds it, valid on our clock until `expires`.
    HeldByOther { holder: String, expires: Instant },
    /// The API did not let us decide (error, timeout, repeated conflicts).
    Failed,
}

/// Runs the election loop; see the module docs.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    shared: Arc<Shared>,
    observed: Option<Observed>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> LeaderElector {
        let api = Api::namespaced(client, &cfg.namespace);
        let (leader, _) = watch::channel(false);
        LeaderElector {
            api,
            cfg,
            shared: Arc::new(Shared {
                leader,
                watermark: Mutex::new(None),
                counters: Counters::default(),
            }),
            observed: None,
        }
    }

    pub fn handle(&self) -> LeaseHandle {
        LeaseHandle {
            shared: self.shared.clone(),
        }
    }

    fn is_leader(&self) -> bool {
        *self.shared.leader.borrow()
    }

    fn set_leader(&self, leader: bool) {
        self.shared.leader.send_replace(leader);
    }

    fn count(&self, f: impl Fn(&Counters) -> &AtomicU64) {
        f(&self.shared.counters).fetch_add(1, Ordering::Relaxed);
    }

    /// Campaigns, leads and renews until `shutdown` completes; then releases the lease if
    /// held.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Start of the last successful acquire or renew: the renew deadline counts from the
        // moment the request was sent, the conservative end.
        let mut last_ok: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let leader = self.is_leader();
            let budget = match (leader, last_ok) {
                (true, Some(t)) => (t + self.cfg.renew_deadline).saturating_duration_since(started),
                _ => self.cfg.renew_deadline,
            };
            let round = tokio::select! {
                _ = &mut shutdown => break,
                r = tokio::time::timeout(budget, self.round()) => match r {
                    Ok(r) => r,
                    Err(_) => {
                        self.count(|c| &c.api_errors);
                        tracing::debug!(lease = %self.cfg.name, "lease request timed out");
                        Round::Failed
                    }
                },
            };
            let mut wait = self.cfg.retry_period;
            match round {
                Round::Leader => {
                    last_ok = Some(started);
                    if !leader {
                        self.count(|c| &c.acquired);
                        tracing::info!(
                            lease = %self.cfg.name, identity = %self.cfg.identity,
                            "became leader"
                        );
                        self.set_leader(true);
                    }
                }
                Round::HeldByOther { holder, expires } => {
                    if leader {
                        self.count(|c| &c.lost);
                        tracing::warn!(lease = %self.cfg.name, %holder, "lease taken over by another agent; stepping down");
                        self.set_leader(false);
                    }
                    // Wake when the lease would expire rather than up to a period later.
                    let until_expiry = expires.saturating_duration_since(Instant::now());
                    wait = wait.min(until_expiry.max(Duration::from_millis(10)));
                }
                Round::Failed => {
                    if leader {
                        self.count(|c| &c.renew_failures);
                        let deadline = last_ok.map(|t| t + self.cfg.renew_deadline);
                        if deadline.is_none_or(|d| Instant::now() >= d) {
                            self.count(|c| &c.lost);
                            tracing::warn!(
                                lease = %self.cfg.name,
                                deadline = ?self.cfg.renew_deadline,
                                "could not renew the lease within the renew deadline; stepping down"
                            );
                            self.set_leader(false);
                        } else if let Some(d) = deadline {
                            // Never sleep past the deadline while still claiming leadership.
                            wait = wait.min(d.saturating_duration_since(Instant::now()));
                        }
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if self.is_leader() {
            self.count(|c| &c.lost);
            self.set_leader(false);
            let limit = self.cfg.renew_deadline;
            match tokio::time::timeout(limit, self.release()).await {
                Ok(true) => tracing::info!(lease = %self.cfg.name, "lease released"),
                Ok(false) => {}
                Err(_) => {
                    self.count(|c| &c.api_errors);
                    tracing::warn!(lease = %self.cfg.name, "releasing the lease timed out; others take over when it expires");
                }
            }
        }
    }

    /// One acquire-or-renew round.
    async fn round(&mut self) -> Round {
        for _ in 0..CONFLICT_RETRIES {
            let now = MicroTime(Timestamp::now());
            let current = match self.api.get_opt(&self.cfg.name).await {
                Ok(c) => c,
                Err(e) => return self.api_error("get", &e),
            };
            let Some(mut lease) = current else {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        annotations: self.annotations(BTreeMap::new()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.cfg.identity.clone()),
                        lease_duration_seconds: Some(self.cfg.lease_seconds()),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(created) => {
                        self.observe(created.spec.unwrap_or_default(), true);
                        return Round::Leader;
                    }
                    Err(kube::Error::Api(s)) if s.is_conflict() => {
                        self.count(|c| &c.conflicts);
                        continue;
                    }
                    Err(e) => return self.api_error("create", &e),
                }
            };
            let spec = lease.spec.clone().unwrap_or_default();
            self.observe(spec.clone(), false);
            let holder = spec.holder_identity.as_deref().unwrap_or("");
            let ours = holder == self.cfg.identity;
            if !holder.is_empty() && !ours {
                let valid = spec
                    .lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs)
                    .unwrap_or(self.cfg.lease_duration);
                let seen = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
                let expires = seen + valid;
                if Instant::now() < expires {
                    return Round::HeldByOther {
                        holder: holder.to_string(),
                        expires,
                    };
                }
            }
            if !self.is_leader() {
                // Taking over (or re-taking our own lease after a restart): the watermark in
                // the Lease is the newest any leader wrote.
                let annotated = lease
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(WATERMARK_ANNOTATION))
                    .filter(|w| !w.is_empty())
                    .cloned();
                if annotated.is_some() {
                    *lock(&self.shared.watermark) = annotated;
                }
            }
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(self.cfg.identity.clone()),
                lease_duration_seconds: Some(self.cfg.lease_seconds()),
                acquire_time: if ours {
                    spec.acquire_time.clone().or_else(|| Some(now.clone()))
                } else {
                    Some(now.clone())
                },
                renew_time: Some(now),
                lease_transitions: Some(if ours {
                    spec.lease_transitions.unwrap_or(0)
                } else {
                    spec.lease_transitions.unwrap_or(0).saturating_add(1)
                }),
                ..spec
            });
            lease.metadata.annotations =
                self.annotations(lease.metadata.annotations.take().unwrap_or_default());
            lease.metadata.managed_fields = None;
            match self
                .api
                .replace(&self.cfg.name, &PostParams::default(), &lease)
                .await
            {
                Ok(updated) => {
                    self.observe(updated.spec.unwrap_or_default(), true);
                    return Round::Leader;
                }
                Err(kube::Error::Api(s)) if s.is_conflict() => {
                    self.count(|c| &c.conflicts);
                    continue;
                }
                Err(e) => return self.api_error("update", &e),
            }
        }
        Round::Failed
    }

    /// Writes an empty holder so the next candidate need not wait for expiry. Returns
    /// whether the release was written.
    async fn release(&mut self) -> bool {
        for _ in 0..CONFLICT_RETRIES {
            let mut lease = match self.api.get_opt(&self.cfg.name).await {
                Ok(Some(l)) => l,
                Ok(None) => return false,
                Err(e) => {
                    self.api_error("get", &e);
                    return false;
                }
            };
            let mut spec = lease.spec.take().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
                // Someone else took it meanwhile: not ours to release.
                return false;
            }
            let now = MicroTime(Timestamp::now());
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now.clone());
            spec.acquire_time = Some(now);
            lease.spec = Some(spec);
            lease.metadata.annotations =
                self.annotations(lease.metadata.annotations.take().unwrap_or_default());
            lease.metadata.managed_fields = None;
            match self
                .api
                .replace(&self.cfg.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return true,
                Err(kube::Error::Api(s)) if s.is_conflict() => {
                    self.count(|c| &c.conflicts);
                }
                Err(e) => {
                    self.api_error("update", &e);
                    return false;
                }
            }
        }
        false
    }

    /// The Lease's annotations with our watermark, if we have one.
    fn annotations(
        &self,
        mut annotations: BTreeMap<String, String>,
    ) -> Option<BTreeMap<String, String>> {
        if let Some(w) = lock(&self.shared.watermark).clone() {
            annotations.insert(WATERMARK_ANNOTATION.to_string(), w);
        }
        (!annotations.is_empty()).then_some(annotations)
    }

    /// Remembers the record; the observation time moves only when it changed, or when we
    /// wrote it ourselves.
    fn observe(&mut self, spec: LeaseSpec, ours: bool) {
        let changed = self.observed.as_ref().is_none_or(|o| o.spec != spec);
        if changed || ours {
            self.observed = Some(Observed {
                spec,
                at: Instant::now(),
            });
        }
    }

    fn api_error(&self, verb: &str, e: &kube::Error) -> Round {
        self.count(|c| &c.api_errors);
        match e {
            kube::Error::Api(s) if s.code == 403 => tracing::warn!(
                lease = %self.cfg.name, namespace = %self.cfg.namespace,
                "forbidden: the agent needs RBAC verb {verb} on coordination.k8s.io leases: {}",
                s.message
            ),
            _ => tracing::debug!(lease = %self.cfg.name, "lease {verb} failed: {e}"),
        }
        Round::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let mut c = LeaseConfig::new("l", "ns", "node-a");
        assert!(c.validate().is_ok());
        c.renew_deadline = c.lease_duration;
        assert!(c.validate().is_err());
        c = LeaseConfig::new("l", "ns", "");
        assert!(c.validate().is_err());
        c = LeaseConfig::new("l", "ns", "n");
        c.retry_period = Duration::ZERO;
        assert!(c.validate().is_err());
    }
}
