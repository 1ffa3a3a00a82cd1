//! Kubernetes metadata from the kubelet's log path layout
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`.

use std::path::Path;

/// The pod and container a container log file belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sMeta {
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub container_name: String,
}

/// Parses `…/log/pods/<ns>_<pod>_<uid>/<container>/<file>` anywhere in `path` (so a host
/// mount such as `/host/var/log/pods/…` works). Namespace and pod names cannot contain `_`
/// (they are DNS labels), so the split is unambiguous.
pub(crate) fn from_path(path: &Path) -> Option<K8sMeta> {
    let parts: Vec<&str> = path.iter().filter_map(|c| c.to_str()).collect();
    let i = (1..parts.len()).find(|&i| parts[i] == "pods" && parts[i - 1] == "log")?;
    if parts.len() < i + 4 {
        return None;
    }
    let mut pod = parts[i + 1].splitn(3, '_');
    let (namespace, pod_name, pod_uid) = (pod.next()?, pod.next()?, pod.next()?);
    let container = parts[i + 2];
    if [namespace, pod_name, pod_uid, container]
        .iter()
        .any(|s| s.is_empty())
    {
        return None;
    }
    Some(K8sMeta {
        namespace: namespace.to_string(),
        pod_name: pod_name.to_string(),
        pod_uid: pod_uid.to_string(),
        container_name: container.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_paths() {
        let m = from_path(Path::new(
            "/var/log/pods/kube-system_coredns-5d78c9869d-abcde_0f3c8a4e-1b2c-4d5e-8f90-123456789abc/coredns/0.log",
        ))
        .unwrap();
        assert_eq!(m.namespace, "kube-system");
        assert_eq!(m.pod_name, "coredns-5d78c9869d-abcde");
        assert_eq!(m.pod_uid, "0f3c8a4e-1b2c-4d5e-8f90-123456789abc");
        assert_eq!(m.container_name, "coredns");
        assert!(
            from_path(Path::new(
                "/host/var/log/pods/a_b_c/d/0.log.20240101-000000"
            ))
            .is_some()
        );
        assert_eq!(from_path(Path::new("/var/log/pods/a_b/d/0.log")), None);
        assert_eq!(from_path(Path::new("/var/log/pods/a_b_c/0.log")), None);
        assert_eq!(from_path(Path::new("/var/log/syslog")), None);
    }
}
