//! The fake's state: objects, the global resourceVersion, the event history watches
//! resume from, the open watches, the faults a test configured, and the request log.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::resource::{RESOURCES, ResourceDef, Selector};
use crate::util;

/// One stored object: its serialised JSON (served as is; serialising once on write keeps a
/// relist of 10,000 pods cheap for the fake) and the fields lookups need without parsing.
#[derive(Debug)]
pub struct Stored {
    pub ns: String,
    pub name: String,
    pub uid: String,
    pub created: String,
    pub rv: u64,
    pub node_name: String,
    pub json: Bytes,
}

impl Stored {
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    fn matches(&self, fields: &Selector, labels: &Selector) -> bool {
        if fields.is_empty() && labels.is_empty() {
            return true;
        }
        // The selectors the agent uses are answered from the index; anything else parses.
        let mut parsed: Option<Value> = None;
        let mut value = || parsed.get_or_insert_with(|| self.value()).clone();
        let fields_ok = fields.is_empty()
            || match fields.single_eq() {
                Some(("metadata.name", v)) => self.name == v,
                Some(("metadata.namespace", v)) => self.ns == v,
                Some(("spec.nodeName", v)) => self.node_name == v,
                _ => fields.matches_fields(&value()),
            };
        fields_ok && (labels.is_empty() || labels.matches_labels(&value()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change, kept for watches that resume from an older resourceVersion.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub res: usize,
    pub ty: EventType,
    pub obj: Arc<Stored>,
    pub old: Option<Arc<Stored>>,
    /// Sent to every watch of the resource regardless of selectors (injected malformed
    /// objects must reach a node-scoped pod watch too).
    pub force: bool,
}

pub struct WatchSub {
    pub id: u64,
    pub res: usize,
    pub ns: Option<String>,
    pub fields: Selector,
    pub labels: Selector,
    pub tx: UnboundedSender<Bytes>,
}

/// What an API call failed with, rendered as a `Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn status_json(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }

    pub fn not_found(def: &ResourceDef, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", def.qualified()),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    pub fn expired(message: String) -> ApiError {
        ApiError::new(410, "Expired", message)
    }
}

/// A request the fake answered, with the Kubernetes verb it maps to (what RBAC checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string, "" when absent.
    pub query: String,
    /// get, list, watch, create, update, patch, delete, deletecollection; "" for
    /// non-resource paths (discovery, /version).
    pub verb: String,
    /// API group ("" for core) and resource plural; "" for non-resource paths.
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    /// The HTTP status answered (200 for a watch, even one that ends in a 410 event).
    pub status: u16,
}

impl Request {
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method, "path": self.path, "query": self.query, "verb": self.verb,
            "group": self.group, "resource": self.resource, "namespace": self.namespace,
            "name": self.name, "status": self.status,
        })
    }
}

pub struct State {
    pub rv: u64,
    pub store: Vec<BTreeMap<(String, String), Arc<Stored>>>,
    pub history: VecDeque<Change>,
    pub history_limit: usize,
    /// The oldest resourceVersion a watch may resume from; older gets 410 Expired.
    pub floor: u64,
    pub watches: Vec<WatchSub>,
    pub next_watch_id: u64,
    pub forbidden: HashSet<(String, String)>,
    pub unavailable: bool,
    pub refuse: bool,
    pub requests: Vec<Request>,
    pub bookmark_interval: Duration,
    pub user: String,
}

pub struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub fn new(history_limit: usize, bookmark_interval: Duration, user: String) -> Shared {
        Shared {
            state: Mutex::new(State {
                rv: 1,
                store: RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                floor: 0,
                watches: Vec::new(),
                next_watch_id: 1,
                forbidden: HashSet::new(),
                unavailable: false,
                refuse: false,
                requests: Vec::new(),
                bookmark_interval,
                user,
            }),
        }
    }

    /// The state, even after a panic elsewhere poisoned the lock: a test fake should keep
    /// answering so the test under way reports its own failure.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `{"type":T,"object":<json>}\n`
pub fn event_line(ty: &str, obj: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(obj.len() + 32);
    b.put_slice(b"{\"type\":\"");
    b.put_slice(ty.as_bytes());
    b.put_slice(b"\",\"object\":");
    b.put_slice(obj);
    b.put_slice(b"}\n");
    b.freeze()
}

pub fn bookmark_line(res: usize, rv: u64, initial_end: bool) -> Bytes {
    let def = &RESOURCES[res];
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta});
    event_line("BOOKMARK", obj.to_string().as_bytes())
}

pub fn error_line(err: &ApiError) -> Bytes {
    event_line("ERROR", err.status_json().to_string().as_bytes())
}

impl State {
    /// The watch line `sub` should get for `ch`, if any: selectors are applied to the old
    /// and new object, so an object moving out of a selector is DELETED for that watch and
    /// one moving in is ADDED, as the API server's watch cache does.
    pub fn line_for(sub: &WatchSub, ch: &Change) -> Option<Bytes> {
        if sub.res != ch.res {
            return None;
        }
        if ch.force {
            return Some(event_line(ch.ty.as_str(), &ch.obj.json));
        }
        let in_ns = |s: &Stored| sub.ns.as_ref().is_none_or(|ns| *ns == s.ns);
        let now = in_ns(&ch.obj) && ch.obj.matches(&sub.fields, &sub.labels);
        let ty = match ch.ty {
            EventType::Modified => {
                let before = ch
                    .old
                    .as_ref()
                    .is_some_and(|o| in_ns(o) && o.matches(&sub.fields, &sub.labels));
                match (before, now) {
                    (true, true) => EventType::Modified,
                    (false, true) => EventType::Added,
                    (true, false) => EventType::Deleted,
                    (false, false) => return None,
                }
            }
            ty if now => ty,
            _ => return None,
        };
        Some(event_line(ty.as_str(), &ch.obj.json))
    }

    fn record(&mut self, ch: Change) {
        self.watches.retain(|sub| match State::line_for(sub, &ch) {
            Some(line) => sub.tx.send(line).is_ok(),
            None => !sub.tx.is_closed(),
        });
        self.history.push_back(ch);
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.floor = self.floor.max(old.rv);
            }
        }
    }

    /// Adds or replaces an object: new resourceVersion, uid and creationTimestamp kept from
    /// the stored object (or generated), namespace defaulted. Returns the stored object.
    pub fn apply(&mut self, mut obj: Value, res: usize) -> Result<Value, ApiError> {
        let def = &RESOURCES[res];
        let Some(o) = obj.as_object_mut() else {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "object is not a JSON object",
            ));
        };
        o.insert("kind".into(), def.kind.into());
        o.insert("apiVersion".into(), def.api_version().into());
        let meta = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "metadata is not an object",
            ));
        };
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty()
            && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
        {
            name = format!("{prefix}{}", util::suffix(util::next_random(), 5));
            meta.insert("name".into(), name.clone().into());
        }
        if name.is_empty() {
            return Err(ApiError::new(
                400,
                "Invalid",
                format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    def.kind
                ),
            ));
        }
        let ns = if def.namespaced {
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string();
            meta.insert("namespace".into(), ns.clone().into());
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        let key = (ns.clone(), name.clone());
        let old = self.store[res].get(&key).cloned();
        let given = |k: &str| {
            meta.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let uid = match &old {
            Some(o) => o.uid.clone(),
            None => given("uid").map(str::to_string).unwrap_or_else(util::uid),
        };
        let created = match &old {
            Some(o) => o.created.clone(),
            None => given("creationTimestamp")
                .map(str::to_string)
                .unwrap_or_else(|| util::rfc3339(util::now_secs())),
        };
        self.rv += 1;
        let rv = self.rv;
        meta.insert("uid".into(), uid.clone().into());
        meta.insert("creationTimestamp".into(), created.clone().into());
        meta.insert("resourceVersion".into(), rv.to_string().into());
        let node_name = obj
            .get("spec")
            .and_then(|s| s.get("nodeName"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let json = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
        let stored = Arc::new(Stored {
            ns,
            name,
            uid,
            created,
            rv,
            node_name,
            json,
        });
        self.store[res].insert(key, stored.clone());
        let ty = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv,
            res,
            ty,
            obj: stored,
            old,
            force: false,
        });
        Ok(obj)
    }

    /// Removes an object; the DELETED event carries it at the deletion's resourceVersion.
    pub fn delete(&mut self, res: usize, ns: &str, name: &str) -> Option<Value> {
        let old = self.store[res].remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let mut v = old.value();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), self.rv.to_string().into());
        }
        let stored = Arc::new(Stored {
            rv: self.rv,
            json: Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            ns: old.ns.clone(),
            name: old.name.clone(),
            uid: old.uid.clone(),
            created: old.created.clone(),
            node_name: old.node_name.clone(),
        });
        let rv = self.rv;
        self.record(Change {
            rv,
            res,
            ty: EventType::Deleted,
            obj: stored,
            old: None,
            force: false,
        });
        Some(v)
    }

    /// A MODIFIED event for `res` whose object has the wrong types, to every open watch of
    /// that resource (and to watches resuming from before it). Not stored, so a relist is
    /// clean.
    pub fn inject_malformed(&mut self, res: usize) {
        let def = &RESOURCES[res];
        self.rv += 1;
        let name = format!("malformed-{}", self.rv);
        let obj = json!({
            "kind": def.kind,
            "apiVersion": def.api_version(),
            "metadata": {"name": name, "namespace": "default", "uid": util::uid(),
                         "resourceVersion": self.rv.to_string(), "labels": "not-a-map"},
            "spec": 5,
            "status": "malformed",
        });
        let stored = Arc::new(Stored {
            ns: "default".into(),
            name,
            uid: String::new(),
            created: String::new(),
            rv: self.rv,
            node_name: String::new(),
            json: Bytes::from(obj.to_string()),
        });
        let rv = self.rv;
        self.record(Change {
            rv,
            res,
            ty: EventType::Modified,
            obj: stored,
            old: None,
            force: true,
        });
    }

    /// Sends 410 Expired to every open watch, closes them, and forgets the history, so
    /// watches resuming from any resourceVersion before now get 410 and relist. The counter
    /// is bumped so even a client that saw the latest change must relist.
    pub fn expire_watches(&mut self) -> usize {
        self.rv += 1;
        self.floor = self.rv;
        self.history.clear();
        let n = self.watches.len();
        for sub in self.watches.drain(..) {
            let err = ApiError::expired(format!(
                "too old resource version: {} ({})",
                self.rv - 1,
                self.rv
            ));
            let _ = sub.tx.send(error_line(&err));
        }
        n
    }

    /// Ends every open watch without an event, as a dropped connection would.
    pub fn close_watches(&mut self) {
        self.watches.clear();
    }

    pub fn count(&self, res: usize) -> usize {
        self.store[res].len()
    }

    pub fn get(&self, res: usize, ns: &str, name: &str) -> Option<Arc<Stored>> {
        self.store[res]
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn is_forbidden(&self, resource: &str, verb: &str) -> bool {
        [(resource, verb), (resource, "*"), ("*", verb)]
            .iter()
            .any(|(r, v)| self.forbidden.contains(&(r.to_string(), v.to_string())))
    }

    /// The objects of `res` (in `ns`, if given) after the key `after`, matching the
    /// selectors, at most `limit` (0: all). Returns them and whether more remain.
    pub fn list(
        &self,
        res: usize,
        ns: Option<&str>,
        fields: &Selector,
        labels: &Selector,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> (Vec<Arc<Stored>>, bool) {
        use std::ops::Bound;
        let map = &self.store[res];
        let lower = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => match ns {
                Some(ns) => Bound::Included((ns.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        let mut out = Vec::new();
        for ((ons, _), s) in map.range((lower, Bound::Unbounded)) {
            if let Some(ns) = ns {
                if ons.as_str() > ns {
                    break;
                }
                if ons != ns {
                    continue;
                }
            }
            if !s.matches(fields, labels) {
                continue;
            }
            if limit > 0 && out.len() == limit {
                return (out, true);
            }
            out.push(s.clone());
        }
        (out, false)
    }
}
