//! Container and virtualization detection against fixture trees in `tests/fixtures`.

mod common;

use std::collections::BTreeMap;

use common::fixture;
use tfo_platform::CloudProvider;
use tfo_platform::detect::{container, virt};

const ID: &str = "9d3c1f0e8b7a6d5c4b3a29180f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6";

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn detect(name: &str) -> container::ContainerInfo {
    container::detect(&fixture(&format!("container/{name}")), &no_env())
}

#[test]
fn docker_on_cgroup_v1() {
    let c = detect("cgroup-v1-docker");
    assert!(c.is_container);
    assert_eq!(c.container_runtime.as_deref(), Some("docker"));
    assert_eq!(c.container_id.as_deref(), Some(ID));
    assert_eq!(c.cgroup_version.as_deref(), Some("v1"));
    assert!(!c.is_kubernetes);
}

#[test]
fn docker_on_cgroup_v2_finds_the_id_in_mountinfo() {
    let c = detect("cgroup-v2-docker");
    assert!(c.is_container);
    assert_eq!(c.container_runtime.as_deref(), Some("docker"));
    assert_eq!(c.container_id.as_deref(), Some(ID));
    assert_eq!(c.cgroup_version.as_deref(), Some("v2"));
}

#[test]
fn containerd_in_kubernetes() {
    let c = detect("containerd-k8s");
    assert!(c.is_container && c.is_kubernetes);
    assert_eq!(c.container_runtime.as_deref(), Some("containerd"));
    // From the cgroup scope, not the pod sandbox directory mounted for /etc/hostname.
    assert_eq!(c.container_id.as_deref(), Some(ID));
    assert_eq!(c.kubernetes_namespace.as_deref(), Some("telemetryflow"));
    assert_eq!(c.container_name.as_deref(), Some("tfo-agent"));
    assert_eq!(c.cgroup_version.as_deref(), Some("v2"));
}

#[test]
fn crio_in_kubernetes() {
    let c = detect("crio-k8s");
    assert!(c.is_container && c.is_kubernetes);
    assert_eq!(c.container_runtime.as_deref(), Some("cri-o"));
    assert_eq!(c.container_id.as_deref(), Some(ID));
    assert_eq!(c.kubernetes_namespace.as_deref(), Some("observability"));
    assert_eq!(c.cgroup_version.as_deref(), Some("v1"));
}

#[test]
fn podman_reads_containerenv() {
    let c = detect("podman");
    assert!(c.is_container && !c.is_kubernetes);
    assert_eq!(c.container_runtime.as_deref(), Some("podman"));
    assert_eq!(c.container_id.as_deref(), Some(ID));
    assert_eq!(c.container_name.as_deref(), Some("tfo-agent"));
    assert_eq!(
        c.container_image.as_deref(),
        Some("docker.io/telemetryflow/tfo-agent:1.1.4")
    );
}

#[test]
fn kubernetes_with_the_cgroupfs_driver() {
    let c = detect("k8s-cgroupfs");
    assert!(c.is_container && c.is_kubernetes);
    assert_eq!(c.container_id.as_deref(), Some(ID));
    // cgroupfs paths name no runtime and nothing else does here.
    assert_eq!(c.container_runtime.as_deref(), Some("unknown"));
    assert_eq!(c.cgroup_version.as_deref(), Some("hybrid"));
}

#[test]
fn kubernetes_from_the_environment() {
    let root = fixture("container/k8s-env");
    let plain = container::detect(&root, &no_env());
    assert!(!plain.is_container && !plain.is_kubernetes, "{plain:?}");
    let mut env = no_env();
    env.insert("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into());
    env.insert("POD_NAME".into(), "tfo-agent-x7k2p".into());
    env.insert("POD_NAMESPACE".into(), "telemetryflow".into());
    let k = container::detect(&root, &env);
    assert!(k.is_container && k.is_kubernetes);
    assert_eq!(k.kubernetes_pod_name.as_deref(), Some("tfo-agent-x7k2p"));
    assert_eq!(k.kubernetes_namespace.as_deref(), Some("telemetryflow"));
}

#[test]
fn bare_metal_is_not_a_container() {
    let c = detect("bare-metal");
    assert!(!c.is_container);
    assert_eq!(c.container_runtime, None);
    assert_eq!(c.container_id, None);
    assert_eq!(c.cgroup_version.as_deref(), Some("v2"));
    let mut env = no_env();
    env.insert("container".into(), "podman".into());
    let c = container::detect(&fixture("container/bare-metal"), &env);
    assert!(
        c.is_container,
        "the `container` variable set by the runtime counts"
    );
    assert_eq!(c.container_runtime.as_deref(), Some("podman"));
}

fn vm(name: &str) -> virt::VirtualizationInfo {
    virt::detect(&fixture(&format!("virt/{name}")))
}

#[test]
fn virtualization_types_and_cloud_hints() {
    let cases: [(&str, Option<&str>, Option<CloudProvider>); 10] = [
        ("bare-metal", None, None),
        ("kvm", Some("kvm"), None),
        ("qemu-tcg", Some("qemu"), None),
        ("hyperv-onprem", Some("hyperv"), None),
        ("azure", Some("hyperv"), Some(CloudProvider::Azure)),
        ("aws-nitro", Some("kvm"), Some(CloudProvider::Aws)),
        ("aws-xen", Some("xen"), Some(CloudProvider::Aws)),
        ("gcp", Some("kvm"), Some(CloudProvider::Gcp)),
        ("vmware", Some("vmware"), None),
        ("cpu-flag-only", Some("unknown"), None),
    ];
    for (name, kind, hint) in cases {
        let v = vm(name);
        assert_eq!(v.virtualization_type.as_deref(), kind, "{name}");
        assert_eq!(v.is_virtualized, kind.is_some(), "{name}");
        assert_eq!(v.cloud_hint, hint, "{name}");
    }
}

#[test]
fn hyperv_on_premises_is_never_azure() {
    let v = vm("hyperv-onprem");
    assert_eq!(v.virtualization_type.as_deref(), Some("hyperv"));
    assert_ne!(v.cloud_hint, Some(CloudProvider::Azure));
}
