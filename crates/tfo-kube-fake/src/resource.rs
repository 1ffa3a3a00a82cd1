//! The resources the fake serves, and field/label selectors over their JSON.

use serde_json::Value;

/// One API resource: where it lives and what its objects are called.
#[derive(Debug)]
pub struct ResourceDef {
    /// API group, "" for core.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural, lower case: the path segment and the RBAC resource name.
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

impl ResourceDef {
    /// `v1` or `apps/v1`, as objects carry it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `leases.coordination.k8s.io`, as Status messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

macro_rules! res {
    ($g:expr, $v:expr, $p:expr, $k:expr, $n:expr) => {
        ResourceDef {
            group: $g,
            version: $v,
            plural: $p,
            kind: $k,
            namespaced: $n,
        }
    };
}

/// Everything served. The index into this table identifies a resource internally.
pub static RESOURCES: &[ResourceDef] = &[
    res!("", "v1", "pods", "Pod", true),
    res!("", "v1", "nodes", "Node", false),
    res!("", "v1", "namespaces", "Namespace", false),
    res!("", "v1", "services", "Service", true),
    res!("", "v1", "events", "Event", true),
    res!("", "v1", "resourcequotas", "ResourceQuota", true),
    res!("", "v1", "endpoints", "Endpoints", true),
    res!("", "v1", "configmaps", "ConfigMap", true),
    res!("apps", "v1", "deployments", "Deployment", true),
    res!("apps", "v1", "replicasets", "ReplicaSet", true),
    res!("apps", "v1", "statefulsets", "StatefulSet", true),
    res!("apps", "v1", "daemonsets", "DaemonSet", true),
    res!("batch", "v1", "jobs", "Job", true),
    res!("batch", "v1", "cronjobs", "CronJob", true),
    res!(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true
    ),
    res!("coordination.k8s.io", "v1", "leases", "Lease", true),
    res!("events.k8s.io", "v1", "events", "Event", true),
];

/// The resource at a (group, version, plural) path.
pub fn by_path(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource named by a kind ("Pod"), a plural ("pods") or "plural.group"
/// ("leases.coordination.k8s.io"), case-insensitively. Core wins over events.k8s.io for
/// "Event"/"events".
pub fn lookup(name: &str) -> Option<usize> {
    RESOURCES.iter().position(|r| {
        r.kind.eq_ignore_ascii_case(name)
            || r.plural.eq_ignore_ascii_case(name)
            || r.qualified().eq_ignore_ascii_case(name)
    })
}

/// The resource of an object, from its `kind` and (when present) `apiVersion`.
pub fn of_object(obj: &Value) -> Option<usize> {
    let kind = obj.get("kind")?.as_str()?;
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    RESOURCES
        .iter()
        .position(|r| r.kind == kind && api_version.is_none_or(|av| av == r.api_version()))
}

/// The string at a dotted path (`spec.nodeName`), as field selectors compare it: numbers
/// and booleans by their JSON text, missing as "".
pub fn field(obj: &Value, path: &str) -> String {
    let mut v = obj;
    for part in path.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Exists,
    NotExists,
}

/// A parsed field or label selector: a conjunction of `key=value`, `key==value`,
/// `key!=value` (and for labels `key`, `!key`). Set-based label expressions
/// (`in`, `notin`) are not supported and rejected at parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<(String, Op, String)>,
}

impl Selector {
    pub fn parse(s: &str, labels: bool) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Some((k, v)) = term.split_once("!=") {
                reqs.push((k.trim().to_string(), Op::Ne, v.trim().to_string()));
            } else if let Some((k, v)) = term.split_once("==") {
                reqs.push((k.trim().to_string(), Op::Eq, v.trim().to_string()));
            } else if let Some((k, v)) = term.split_once('=') {
                reqs.push((k.trim().to_string(), Op::Eq, v.trim().to_string()));
            } else if labels && term.contains([' ', '(']) {
                return Err(format!("unsupported label selector term {term:?}"));
            } else if labels && let Some(k) = term.strip_prefix('!') {
                reqs.push((k.trim().to_string(), Op::NotExists, String::new()));
            } else if labels {
                reqs.push((term.to_string(), Op::Exists, String::new()));
            } else {
                return Err(format!("invalid field selector term {term:?}"));
            }
        }
        Ok(Selector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// `(key, value)` when the selector is exactly one `key=value`.
    pub fn single_eq(&self) -> Option<(&str, &str)> {
        match self.reqs.as_slice() {
            [(k, Op::Eq, v)] => Some((k.as_str(), v.as_str())),
            _ => None,
        }
    }

    pub fn matches_fields(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(k, op, want)| {
            let have = field(obj, k);
            match op {
                Op::Eq => have == *want,
                Op::Ne => have != *want,
                Op::Exists | Op::NotExists => true,
            }
        })
    }

    pub fn matches_labels(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        self.reqs.iter().all(|(k, op, want)| {
            let have = labels
                .and_then(|l| l.get(k.as_str()))
                .and_then(Value::as_str);
            match op {
                Op::Eq => have == Some(want.as_str()),
                Op::Ne => have != Some(want.as_str()),
                Op::Exists => have.is_some(),
                Op::NotExists => have.is_none(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "x"}},
                         "spec": {"nodeName": "n1"}});
        let s = Selector::parse("spec.nodeName=n1", false).unwrap();
        assert!(s.matches_fields(&pod));
        let s = Selector::parse("spec.nodeName=n2", false).unwrap();
        assert!(!s.matches_fields(&pod));
        let s = Selector::parse("metadata.name==a,metadata.namespace!=kube-system", false).unwrap();
        assert!(s.matches_fields(&pod));
        assert!(Selector::parse("bogus", false).is_err());
        let l = Selector::parse("app=x,!tier", true).unwrap();
        assert!(l.matches_labels(&pod));
        let l = Selector::parse("tier", true).unwrap();
        assert!(!l.matches_labels(&pod));
        assert!(Selector::parse("app in (x,y)", true).is_err());
    }

    #[test]
    fn lookup_names() {
        assert_eq!(RESOURCES[lookup("Pod").unwrap()].plural, "pods");
        assert_eq!(RESOURCES[lookup("leases").unwrap()].kind, "Lease");
        assert_eq!(RESOURCES[lookup("Event").unwrap()].group, "");
        assert_eq!(by_path("apps", "v1", "deployments"), lookup("Deployment"));
    }
}
