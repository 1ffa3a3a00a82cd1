//! Container detection from the agent's own view of the system: `/proc/self/cgroup`,
//! `/proc/self/mountinfo`, marker files (`/.dockerenv`, `/run/.containerenv`), the
//! `container` environment variable, and for Kubernetes `KUBERNETES_SERVICE_HOST` or the
//! service account directory.
//!
//! Evidence is combined rather than taken from one source because each is missing in some
//! setup: with cgroup v2 and a private cgroup namespace `/proc/self/cgroup` is just `0::/`,
//! but the runtime's bind mounts (`/etc/hostname`, `/etc/hosts`) still name the container
//! directory in mountinfo.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::read::{LARGE, read_capped, read_small, read_trim, under};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfo {
    pub is_container: bool,
    /// The full 64-hex-digit id when one can be found.
    pub container_id: Option<String>,
    /// `docker`, `containerd`, `cri-o`, `podman`, `lxc`, `systemd-nspawn`, or `unknown`
    /// for a container whose runtime leaves no trace.
    pub container_runtime: Option<String>,
    pub container_name: Option<String>,
    pub container_image: Option<String>,
    /// `v1`, `v2`, or `hybrid` (v1 controllers with the v2 hierarchy mounted too).
    pub cgroup_version: Option<String>,
    pub is_kubernetes: bool,
    pub kubernetes_namespace: Option<String>,
    pub kubernetes_pod_name: Option<String>,
}

/// Detects against `root` (`/` in production, a fixture tree in tests). `env` is the
/// agent's environment (injectable for tests).
pub fn detect(root: &Path, env: &BTreeMap<String, String>) -> ContainerInfo {
    let cgroup = read_small(&under(root, "/proc/self/cgroup")).unwrap_or_default();
    let mountinfo = read_capped(&under(root, "/proc/self/mountinfo"), LARGE).unwrap_or_default();
    let mut info = ContainerInfo {
        cgroup_version: cgroup_version(root, &cgroup),
        ..Default::default()
    };

    let mut runtime: Option<&'static str> = None;
    let mut id: Option<String> = None;

    // cgroup paths name the runtime and the id in most setups (v1, or v2 without a
    // private cgroup namespace).
    for line in cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        if let Some((rt, cid)) = from_cgroup_path(path) {
            runtime = runtime.or(rt);
            if id.is_none() {
                id = cid;
            }
        }
    }
    // The runtime's bind mounts for /etc/hostname, /etc/hosts, /etc/resolv.conf.
    let mut k8s_container_name = None;
    for line in mountinfo.lines() {
        let root_field = line.split(' ').nth(3).unwrap_or("");
        if let Some((rt, cid)) = from_mount_root(root_field) {
            runtime = runtime.or(rt);
            if id.is_none() {
                id = cid;
            }
        }
        if k8s_container_name.is_none() {
            k8s_container_name = kubelet_container_name(root_field);
        }
    }

    let dockerenv = under(root, "/.dockerenv").exists();
    let containerenv = read_small(&under(root, "/run/.containerenv"));
    let env_container = env.get("container").map(|s| s.trim().to_ascii_lowercase());

    if let Some(ce) = &containerenv {
        // Podman writes key="value" lines (engine, name, id, image); CRI-O creates the
        // file empty.
        let kv = parse_containerenv(ce);
        if kv.get("engine").is_some_and(|e| e.starts_with("podman")) {
            runtime = Some("podman");
        }
        info.container_name = kv.get("name").cloned().filter(|s| !s.is_empty());
        info.container_image = kv.get("image").cloned().filter(|s| !s.is_empty());
        if id.is_none() {
            id = kv.get("id").filter(|s| is_hex64(s)).cloned();
        }
    }

    let sa_dir = [
        "/var/run/secrets/kubernetes.io/serviceaccount",
        "/run/secrets/kubernetes.io/serviceaccount",
    ]
    .iter()
    .map(|p| under(root, p))
    .find(|p| p.is_dir());
    info.is_kubernetes = env
        .get("KUBERNETES_SERVICE_HOST")
        .is_some_and(|v| !v.is_empty())
        || sa_dir.is_some()
        || cgroup.contains("kubepods");
    if info.is_kubernetes {
        info.kubernetes_namespace = sa_dir
            .and_then(|d| read_trim(&d.join("namespace")))
            .or_else(|| env.get("POD_NAMESPACE").cloned().filter(|s| !s.is_empty()));
        // HOSTNAME is the node name under hostNetwork, so only the downward API is trusted.
        info.kubernetes_pod_name = env.get("POD_NAME").cloned().filter(|s| !s.is_empty());
        if info.container_name.is_none() {
            info.container_name = k8s_container_name;
        }
    }

    if runtime.is_none() {
        runtime = match env_container.as_deref() {
            Some("docker") => Some("docker"),
            Some("podman") => Some("podman"),
            Some("lxc") | Some("lxc-libvirt") => Some("lxc"),
            Some("systemd-nspawn") => Some("systemd-nspawn"),
            Some("crio") | Some("cri-o") => Some("cri-o"),
            _ => None,
        };
    }
    if runtime.is_none() && dockerenv {
        runtime = Some("docker");
    }
    if runtime.is_none() && containerenv.is_some() {
        runtime = Some(if info.is_kubernetes {
            "cri-o"
        } else {
            "podman"
        });
    }

    info.is_container = runtime.is_some()
        || id.is_some()
        || env_container.is_some_and(|c| !c.is_empty())
        || info.is_kubernetes;
    if info.is_container {
        info.container_runtime = Some(runtime.unwrap_or("unknown").to_string());
        info.container_id = id;
    }
    info
}

fn cgroup_version(root: &Path, cgroup: &str) -> Option<String> {
    let mut v1 = false;
    let mut v2 = false;
    for line in cgroup.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("0::") {
            v2 = true;
        } else {
            v1 = true;
        }
    }
    if !v1 && !v2 {
        // No /proc/self/cgroup (fixture or odd kernel): the mounted hierarchy tells.
        if under(root, "/sys/fs/cgroup/cgroup.controllers").exists() {
            return Some("v2".into());
        }
        return None;
    }
    Some(
        match (v1, v2) {
            (true, true) => "hybrid",
            (true, false) => "v1",
            _ => "v2",
        }
        .into(),
    )
}

/// Runtime and id from one cgroup path, e.g. `/docker/<id>`,
/// `/system.slice/docker-<id>.scope`, `/kubepods.slice/.../cri-containerd-<id>.scope`,
/// `/kubepods/burstable/pod<uid>/<id>`, `/machine.slice/libpod-<id>.scope`, `/lxc/<name>`.
fn from_cgroup_path(path: &str) -> Option<(Option<&'static str>, Option<String>)> {
    if path.is_empty() || path == "/" {
        return None;
    }
    let last_id = path.rsplit('/').find_map(hex64_in);
    for seg in path.split('/').rev() {
        let rt = if seg.starts_with("docker-") || seg == "docker" {
            Some("docker")
        } else if seg.starts_with("cri-containerd-") || seg.starts_with("containerd-") {
            Some("containerd")
        } else if seg.starts_with("crio-") || seg == "crio" {
            Some("cri-o")
        } else if seg.starts_with("libpod-") || seg == "libpod_parent" {
            Some("podman")
        } else if seg == "lxc" || seg == "lxc.payload" || seg.starts_with("lxc.payload.") {
            Some("lxc")
        } else {
            None
        };
        if rt.is_some() {
            return Some((rt, last_id));
        }
    }
    // kubepods with the cgroupfs driver names neither runtime nor scope.
    if path.contains("kubepods") {
        return Some((None, last_id));
    }
    None
}

/// Runtime and id from a mountinfo root field, i.e. the source directory of a bind mount.
fn from_mount_root(root: &str) -> Option<(Option<&'static str>, Option<String>)> {
    let after = |marker: &str| -> Option<String> {
        let i = root.find(marker)?;
        hex64_in(root[i + marker.len()..].split('/').next()?)
    };
    if root.contains("/docker/containers/") {
        return Some((Some("docker"), after("/docker/containers/")));
    }
    if root.contains("/containerd/io.containerd.") {
        // Only the task directory is the container's own; /etc/hostname and friends come
        // from the pod sandbox (`.../sandboxes/<pause container id>/`), whose id is not ours.
        let id = root
            .find("io.containerd.runtime.v2.task/")
            .and_then(|i| root[i..].split('/').find_map(hex64_in));
        return Some((Some("containerd"), id));
    }
    if root.contains("/containers/storage/overlay-containers/") {
        // Shared by Podman and CRI-O (both use containers/storage). CRI-O keeps it under
        // /run (or /var/run) and mounts the pod infra container's files, so the id there
        // is not ours; Podman's is the container's own.
        if root.starts_with("/run/") || root.starts_with("/var/run/") {
            return Some((Some("cri-o"), None));
        }
        return Some((Some("podman"), after("/overlay-containers/")));
    }
    None
}

/// `/var/lib/kubelet/pods/<uid>/containers/<name>/<n>` is the termination-log mount.
fn kubelet_container_name(root: &str) -> Option<String> {
    let i = root.find("/kubelet/pods/")?;
    let mut parts = root[i..].split('/').skip(4);
    if parts.next()? != "containers" {
        return None;
    }
    parts.next().filter(|s| !s.is_empty()).map(str::to_string)
}

fn parse_containerenv(s: &str) -> BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A 64-hex-digit run in `seg` bounded by non-hex characters (`docker-<id>.scope`).
fn hex64_in(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_hexdigit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i - start == 64 {
                return Some(seg[start..i].to_ascii_lowercase());
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    #[test]
    fn cgroup_paths() {
        assert_eq!(
            from_cgroup_path(&format!("/docker/{ID}")),
            Some((Some("docker"), Some(ID.into())))
        );
        assert_eq!(
            from_cgroup_path(&format!("/system.slice/docker-{ID}.scope")),
            Some((Some("docker"), Some(ID.into())))
        );
        assert_eq!(
            from_cgroup_path(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{ID}.scope"
            )),
            Some((Some("containerd"), Some(ID.into())))
        );
        assert_eq!(
            from_cgroup_path(&format!("/kubepods/besteffort/podabc/{ID}")),
            Some((None, Some(ID.into())))
        );
        assert_eq!(
            from_cgroup_path("/user.slice/user-1000.slice/session-2.scope"),
            None
        );
        assert_eq!(from_cgroup_path("/"), None);
        assert_eq!(hex64_in(&format!("x{ID}0")), None);
    }
}
