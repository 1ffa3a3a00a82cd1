//! Builders of realistic API objects, as `kubectl get -o json` shows them: managedFields,
//! annotations, labels, ownerReferences and full status, so the agent's slimming and
//! memory figures are measured against what a real API server sends.
//!
//! uid, resourceVersion and creationTimestamp are left for [`crate::FakeApi::apply`] to
//! set unless a builder needs a uid for an owner reference.

use serde_json::{Value, json};

use crate::util;

/// How a generated pod looks.
#[derive(Debug, Clone)]
pub struct PodOpts {
    /// 1–3 containers are typical; any count works.
    pub containers: usize,
    /// Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    /// All containers ready (Running pods only).
    pub ready: bool,
    /// restartCount of the first container.
    pub restarts: u32,
    /// When set, the first container is waiting with this reason (CrashLoopBackOff,
    /// ImagePullBackOff, ContainerCreating) instead of running.
    pub waiting_reason: Option<String>,
    /// Owner (kind, name, uid), e.g. ("ReplicaSet", "web-7d4b9c8f6d", uid).
    pub owner: Option<(String, String, String)>,
    /// Extra labels (app.kubernetes.io/name is always set from the name).
    pub labels: Vec<(String, String)>,
    pub pod_ip: String,
    pub host_ip: String,
}

impl Default for PodOpts {
    fn default() -> Self {
        PodOpts {
            containers: 1,
            phase: "Running".into(),
            ready: true,
            restarts: 0,
            waiting_reason: None,
            owner: None,
            labels: Vec::new(),
            pod_ip: "10.244.0.10".into(),
            host_ip: "192.168.0.10".into(),
        }
    }
}

const CONTAINER_NAMES: [&str; 3] = ["app", "sidecar", "log-shipper"];
const IMAGES: [&str; 3] = [
    "registry.example.com/shop/app:1.24.3",
    "docker.io/envoyproxy/envoy:v1.30.1",
    "docker.io/fluent/fluent-bit:3.0.4",
];

/// A running, ready pod with one container on `node`.
pub fn pod(ns: &str, name: &str, node: &str) -> Value {
    pod_with(ns, name, node, &PodOpts::default())
}

pub fn pod_with(ns: &str, name: &str, node: &str, o: &PodOpts) -> Value {
    let app = o
        .owner
        .as_ref()
        .map(|(kind, n, _)| match kind.as_str() {
            // A replica set is named <deployment>-<pod-template-hash>.
            "ReplicaSet" => n
                .rsplit_once('-')
                .map_or(n.as_str(), |(a, _)| a)
                .to_string(),
            _ => n.clone(),
        })
        .unwrap_or_else(|| name.to_string());
    let mut labels = serde_json::Map::new();
    labels.insert("app.kubernetes.io/name".into(), app.clone().into());
    labels.insert("app.kubernetes.io/part-of".into(), "shop".into());
    labels.insert(
        "pod-template-hash".into(),
        util::suffix(app.len() as u64 * 7919, 10).into(),
    );
    for (k, v) in &o.labels {
        labels.insert(k.clone(), v.clone().into());
    }
    let started = util::ago(3600);
    let running = o.phase == "Running";
    let containers: Vec<Value> = (0..o.containers)
        .map(|i| {
            let cname = container_name(i);
            json!({
                "name": cname,
                "image": IMAGES[i % IMAGES.len()],
                "imagePullPolicy": "IfNotPresent",
                "ports": if i == 0 { json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]) } else { json!([]) },
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "LOG_LEVEL", "value": "info"}
                ],
                "resources": {
                    "requests": {"cpu": "250m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"}
                },
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                                   "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "volumeMounts": [{"name": "kube-api-access", "readOnly": true,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            })
        })
        .collect();
    let statuses: Vec<Value> = (0..o.containers)
        .map(|i| {
            let waiting = if i == 0 { o.waiting_reason.as_deref() } else { None }
                .or(if o.phase == "Pending" { Some("ContainerCreating") } else { None });
            let state = match (waiting, o.phase.as_str()) {
                (Some(r), _) => json!({"waiting": {"reason": r, "message": format!("container {} is {r}", container_name(i))}}),
                (None, "Succeeded" | "Failed") => json!({"terminated": {
                    "exitCode": if o.phase == "Failed" { 1 } else { 0 },
                    "reason": if o.phase == "Failed" { "Error" } else { "Completed" },
                    "startedAt": started, "finishedAt": util::ago(60),
                    "containerID": format!("containerd://{:016x}{:016x}", util::next_random(), util::next_random())}}),
                (None, _) => json!({"running": {"startedAt": started}}),
            };
            let ready = running && o.ready && waiting.is_none();
            let mut s = json!({
                "name": container_name(i),
                "state": state,
                "lastState": if i == 0 && o.restarts > 0 {
                    json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": util::ago(7200), "finishedAt": util::ago(3700)}})
                } else { json!({}) },
                "ready": ready,
                "restartCount": if i == 0 { o.restarts } else { 0 },
                "image": IMAGES[i % IMAGES.len()],
                "imageID": format!("{}@sha256:{:016x}{:016x}{:016x}{:016x}", IMAGES[i % IMAGES.len()].split(':').next().unwrap_or(""),
                    util::next_random(), util::next_random(), util::next_random(), util::next_random()),
                "started": running && waiting.is_none(),
            });
            if waiting.is_none() {
                s["containerID"] = format!("containerd://{:016x}{:016x}{:016x}{:016x}",
                    util::next_random(), util::next_random(), util::next_random(), util::next_random()).into();
            }
            s
        })
        .collect();
    let all_ready = running && o.ready && o.waiting_reason.is_none();
    let cond = |t: &str, ok: bool| {
        json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null,
               "lastTransitionTime": started})
    };
    let mut conditions = vec![
        cond("PodReadyToStartContainers", o.phase != "Pending"),
        cond("Initialized", true),
        cond("Ready", all_ready),
        cond("ContainersReady", all_ready),
        cond("PodScheduled", !node.is_empty()),
    ];
    if !all_ready && let Some(c) = conditions.get_mut(2) {
        c["reason"] = "ContainersNotReady".into();
        c["message"] = "containers with unready status: [app]".into();
    }
    let mut meta = json!({
        "name": name,
        "namespace": ns,
        "labels": labels,
        "annotations": {
            "kubectl.kubernetes.io/restartedAt": util::ago(86_400),
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8080",
            "checksum/config": format!("{:016x}{:016x}", util::next_random(), util::next_random()),
        },
        "managedFields": [
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
             "time": started, "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:checksum/config": {}, "f:prometheus.io/port": {}, "f:prometheus.io/scrape": {}},
                                         "f:generateName": {}, "f:labels": {".": {}, "f:app.kubernetes.io/name": {}, "f:pod-template-hash": {}},
                                         "f:ownerReferences": {".": {}, "k:{\"uid\":\"owner\"}": {}}},
                          "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                                                        "f:resources": {".": {}, "f:limits": {".": {}, "f:cpu": {}, "f:memory": {}}, "f:requests": {".": {}, "f:cpu": {}, "f:memory": {}}}}},
                                     "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                                     "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}},
            {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": started,
             "fieldsType": "FieldsV1", "subresource": "status",
             "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                                                         "k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
                                       "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {},
                                       "f:podIPs": {".": {}, "k:{\"ip\":\"10.244.0.10\"}": {".": {}, "f:ip": {}}}, "f:startTime": {}}}}
        ]
    });
    if let Some((kind, oname, ouid)) = &o.owner {
        let api_version = match kind.as_str() {
            "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Deployment" => "apps/v1",
            "Job" | "CronJob" => "batch/v1",
            _ => "v1",
        };
        meta["ownerReferences"] = json!([{"apiVersion": api_version, "kind": kind, "name": oname, "uid": ouid,
                                          "controller": true, "blockOwnerDeletion": true}]);
        meta["generateName"] = format!("{oname}-").into();
    }
    let mut spec = json!({
        "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
        "containers": containers,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
    });
    if !node.is_empty() {
        spec["nodeName"] = node.into();
    }
    let mut status = json!({
        "phase": o.phase,
        "conditions": conditions,
        "qosClass": "Burstable",
        "startTime": started,
        "containerStatuses": statuses,
    });
    if !node.is_empty() {
        status["hostIP"] = o.host_ip.clone().into();
        status["hostIPs"] = json!([{"ip": o.host_ip}]);
        if o.phase != "Pending" {
            status["podIP"] = o.pod_ip.clone().into();
            status["podIPs"] = json!([{"ip": o.pod_ip}]);
        }
    }
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status})
}

fn container_name(i: usize) -> String {
    match CONTAINER_NAMES.get(i) {
        Some(n) => n.to_string(),
        None => format!("extra-{i}"),
    }
}

/// A Ready node with 4 CPUs, 16 GiB and 110 pods.
pub fn node(name: &str) -> Value {
    node_with(name, true)
}

pub fn node_with(name: &str, ready: bool) -> Value {
    let since = util::ago(30 * 86_400);
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "lastHeartbeatTime": util::ago(20), "lastTransitionTime": since,
               "reason": reason, "message": message})
    };
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m5.xlarge",
                "topology.kubernetes.io/region": "eu-west-1", "topology.kubernetes.io/zone": "eu-west-1a"
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"
            },
            "managedFields": [
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": since, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/hostname": {}}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": util::ago(20), "fieldsType": "FieldsV1",
                 "subresource": "status", "fieldsV1": {"f:status": {"f:conditions": {}, "f:nodeInfo": {}}}}
            ]
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"], "providerID": format!("aws:///eu-west-1a/i-{name}")},
        "status": {
            "capacity": {"cpu": "4", "ephemeral-storage": "104845292Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                         "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "3920m", "ephemeral-storage": "96625420948", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                            "memory": "15525724Ki", "pods": "110"},
            "conditions": [
                cond("NetworkUnavailable", "False", "RouteCreated", "RouteController created a route"),
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                if ready { cond("Ready", "True", "KubeletReady", "kubelet is posting ready status") }
                else { cond("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.") }
            ],
            "addresses": [{"type": "InternalIP", "address": "192.168.0.10"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:016x}{:016x}", util::next_random(), util::next_random()),
                "systemUUID": util::uid(), "bootID": util::uid(),
                "kernelVersion": "6.1.0-18-cloud-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.13", "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64"
            },
            "images": [{"names": [IMAGES[0]], "sizeBytes": 52_428_800}]
        }
    })
}

/// A namespace, phase "Active" or "Terminating".
pub fn namespace(name: &str, phase: &str) -> Value {
    let mut ns = json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name},
                     "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                                        "time": util::ago(86_400), "fieldsType": "FieldsV1",
                                        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}}}]},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": phase}
    });
    if phase == "Terminating" {
        ns["metadata"]["deletionTimestamp"] = util::ago(60).into();
    }
    ns
}

fn template(app: &str, containers: usize) -> Value {
    let cs: Vec<Value> = (0..containers.max(1))
        .map(|i| {
            json!({"name": container_name(i), "image": IMAGES[i % IMAGES.len()],
                   "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}})
        })
        .collect();
    json!({"metadata": {"labels": {"app.kubernetes.io/name": app}}, "spec": {"containers": cs, "restartPolicy": "Always"}})
}

fn workload_meta(ns: &str, name: &str) -> Value {
    json!({
        "name": name, "namespace": ns, "generation": 3,
        "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop"},
        "annotations": {"deployment.kubernetes.io/revision": "3", "meta.helm.sh/release-name": "shop"},
        "managedFields": [{"manager": "helm", "operation": "Update", "apiVersion": "apps/v1", "time": util::ago(86_400),
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}}]
    })
}

/// A deployment with all `replicas` up to date and available.
pub fn deployment(ns: &str, name: &str, replicas: u32) -> Value {
    deployment_with(ns, name, replicas, replicas)
}

pub fn deployment_with(ns: &str, name: &str, desired: u32, available: u32) -> Value {
    let unavailable = desired.saturating_sub(available);
    let mut conditions = vec![
        json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                                     "lastUpdateTime": util::ago(3600), "lastTransitionTime": util::ago(86_400)}),
    ];
    conditions.push(json!({"type": "Available", "status": if unavailable == 0 { "True" } else { "False" },
                           "reason": if unavailable == 0 { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                           "lastUpdateTime": util::ago(3600), "lastTransitionTime": util::ago(3600)}));
    json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": workload_meta(ns, name),
        "spec": {"replicas": desired, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": template(name, 1), "strategy": {"type": "RollingUpdate",
                 "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}, "revisionHistoryLimit": 10,
                 "progressDeadlineSeconds": 600},
        "status": {"observedGeneration": 3, "replicas": desired, "updatedReplicas": desired, "readyReplicas": available,
                   "availableReplicas": available, "unavailableReplicas": unavailable, "conditions": conditions}
    })
}

/// A replica set owned by the deployment `owner` (name, uid) when given.
pub fn replicaset(ns: &str, name: &str, replicas: u32, owner: Option<(&str, &str)>) -> Value {
    let mut rs = json!({
        "kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": workload_meta(ns, name),
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": template(name, 1)},
        "status": {"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas,
                   "availableReplicas": replicas, "observedGeneration": 3}
    });
    if let Some((oname, ouid)) = owner {
        rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": oname,
                                                   "uid": ouid, "controller": true, "blockOwnerDeletion": true}]);
    }
    rs
}

pub fn statefulset(ns: &str, name: &str, replicas: u32) -> Value {
    json!({
        "kind": "StatefulSet", "apiVersion": "apps/v1",
        "metadata": workload_meta(ns, name),
        "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": "OrderedReady",
                 "selector": {"matchLabels": {"app.kubernetes.io/name": name}}, "template": template(name, 1),
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}},
        "status": {"observedGeneration": 3, "replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
                   "updatedReplicas": replicas, "availableReplicas": replicas,
                   "currentRevision": format!("{name}-5d9c7b8f4"), "updateRevision": format!("{name}-5d9c7b8f4"),
                   "collisionCount": 0}
    })
}

/// A daemon set scheduled on `nodes` nodes, all ready.
pub fn daemonset(ns: &str, name: &str, nodes: u32) -> Value {
    json!({
        "kind": "DaemonSet", "apiVersion": "apps/v1",
        "metadata": workload_meta(ns, name),
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": name}}, "template": template(name, 1),
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}},
        "status": {"currentNumberScheduled": nodes, "numberMisscheduled": 0, "desiredNumberScheduled": nodes,
                   "numberReady": nodes, "observedGeneration": 3, "updatedNumberScheduled": nodes,
                   "numberAvailable": nodes}
    })
}

/// A job; complete when `succeeded >= completions`.
pub fn job(
    ns: &str,
    name: &str,
    completions: u32,
    active: u32,
    succeeded: u32,
    failed: u32,
) -> Value {
    let mut status = json!({"startTime": util::ago(600), "active": active, "succeeded": succeeded, "failed": failed,
                            "ready": active, "terminating": 0, "uncountedTerminatedPods": {}});
    if succeeded >= completions {
        status["completionTime"] = util::ago(30).into();
        status["conditions"] = json!([{"type": "Complete", "status": "True", "lastProbeTime": util::ago(30),
                                       "lastTransitionTime": util::ago(30)}]);
    }
    json!({
        "kind": "Job", "apiVersion": "batch/v1",
        "metadata": workload_meta(ns, name),
        "spec": {"parallelism": 1, "completions": completions, "backoffLimit": 6, "completionMode": "NonIndexed",
                 "suspend": false, "template": template(name, 1)},
        "status": status
    })
}

pub fn cronjob(ns: &str, name: &str, schedule: &str) -> Value {
    json!({
        "kind": "CronJob", "apiVersion": "batch/v1",
        "metadata": workload_meta(ns, name),
        "spec": {"schedule": schedule, "concurrencyPolicy": "Forbid", "suspend": false,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                 "jobTemplate": {"spec": {"template": template(name, 1)}}},
        "status": {"lastScheduleTime": util::ago(300), "lastSuccessfulTime": util::ago(280), "active": []}
    })
}

/// A service of `type_` ClusterIP, NodePort or LoadBalancer selecting `app.kubernetes.io/name=<name>`.
pub fn service(ns: &str, name: &str, type_: &str) -> Value {
    let mut port = json!({"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080});
    if type_ != "ClusterIP" {
        port["nodePort"] = 30080.into();
    }
    let mut svc = json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": name},
                     "annotations": {"meta.helm.sh/release-name": "shop"},
                     "managedFields": [{"manager": "helm", "operation": "Update", "apiVersion": "v1", "time": util::ago(86_400),
                                        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:ports": {}, "f:selector": {}, "f:type": {}}}}]},
        "spec": {"type": type_, "selector": {"app.kubernetes.io/name": name}, "ports": [port],
                 "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"], "sessionAffinity": "None",
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}
    });
    if type_ == "LoadBalancer" {
        svc["status"]["loadBalancer"] =
            json!({"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]});
        svc["spec"]["externalTrafficPolicy"] = "Cluster".into();
    }
    svc
}

/// An endpoint slice of `service` with endpoints (ip, node, ready).
pub fn endpointslice(
    ns: &str,
    name: &str,
    service: &str,
    endpoints: &[(&str, &str, bool)],
) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, node, ready)| {
            json!({"addresses": [ip], "conditions": {"ready": ready, "serving": ready, "terminating": false},
                   "nodeName": node, "zone": "eu-west-1a",
                   "targetRef": {"kind": "Pod", "namespace": ns, "name": format!("{service}-{ip}")}})
        })
        .collect();
    json!({
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "generateName": format!("{service}-"),
                     "labels": {"kubernetes.io/service-name": service,
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                     "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": util::ago(600)},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service, "uid": util::uid(),
                                          "controller": true, "blockOwnerDeletion": true}]},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]
    })
}

pub fn resourcequota(ns: &str, name: &str) -> Value {
    json!({
        "kind": "ResourceQuota", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hard": {"pods": "100", "requests.cpu": "20", "requests.memory": "64Gi",
                          "limits.cpu": "40", "limits.memory": "128Gi"}},
        "status": {"hard": {"pods": "100", "requests.cpu": "20", "requests.memory": "64Gi",
                            "limits.cpu": "40", "limits.memory": "128Gi"},
                   "used": {"pods": "12", "requests.cpu": "3", "requests.memory": "1536Mi",
                            "limits.cpu": "6", "limits.memory": "3Gi"}}
    })
}

/// A core/v1 event about `(kind, name)` in `ns`; `type_` Normal or Warning.
pub fn event(
    ns: &str,
    name: &str,
    involved: (&str, &str),
    reason: &str,
    message: &str,
    type_: &str,
    count: u32,
) -> Value {
    let api_version = match involved.0 {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "v1",
    };
    let component = match reason {
        "Scheduled" | "FailedScheduling" => "default-scheduler",
        "ScalingReplicaSet" => "deployment-controller",
        "SuccessfulCreate" => "replicaset-controller",
        _ => "kubelet",
    };
    json!({
        "kind": "Event", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": involved.0, "namespace": ns, "name": involved.1, "uid": util::uid(),
                           "apiVersion": api_version, "resourceVersion": "1234",
                           "fieldPath": if involved.0 == "Pod" { "spec.containers{app}" } else { "" }},
        "reason": reason,
        "message": message,
        "source": {"component": component, "host": if component == "kubelet" { "node-0" } else { "" }},
        "firstTimestamp": util::ago(600),
        "lastTimestamp": util::ago(10),
        "count": count,
        "type": type_,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": ""
    })
}

/// A coordination.k8s.io/v1 Lease held by `holder`.
pub fn lease(ns: &str, name: &str, holder: &str, duration_secs: u32) -> Value {
    json!({
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration_secs,
                 "acquireTime": util::ago(60), "renewTime": util::ago(1), "leaseTransitions": 0}
    })
}

/// Pod `k` of a cluster sits on `node-(k % nodes)`: `nodes * pods_per_node` pods, exactly
/// `pods_per_node` per node. One pod per node belongs to the `kube-proxy` daemon set (when
/// `pods_per_node >= 2`), the rest to deployments of 10 replicas in namespaces `app-0`..
/// `app-9`. Every 50th pod is Pending, every 37th crash-looping, containers 1–3. Also:
/// namespaces, one service + endpoint slice per deployment, a quota per namespace, jobs,
/// cronjobs, a statefulset, and a few events.
pub fn cluster(nodes: usize, pods_per_node: usize) -> Vec<Value> {
    let mut out = Vec::new();
    cluster_each(nodes, pods_per_node, &mut |o| out.push(o));
    out
}

/// [`cluster`] one object at a time: 10,000 parsed pods at once would take ~300 MiB.
pub fn cluster_each(nodes: usize, pods_per_node: usize, out: &mut dyn FnMut(Value)) {
    let nodes = nodes.max(1);
    let total = nodes * pods_per_node;
    let app_namespaces: Vec<String> = (0..10).map(|i| format!("app-{i}")).collect();
    for ns in ["default", "kube-system", "monitoring"] {
        out(namespace(ns, "Active"));
    }
    for ns in &app_namespaces {
        out(namespace(ns, "Active"));
        out(resourcequota(ns, "compute"));
        out(cronjob(ns, "nightly-report", "0 2 * * *"));
        out(job(ns, "nightly-report-29000001", 1, 0, 1, 0));
        out(job(ns, "migrate", 1, 1, 0, 1));
    }
    out(namespace("old-stuff", "Terminating"));
    out(statefulset("monitoring", "prometheus", 2));
    for n in 0..nodes {
        out(node(&format!("node-{n}")));
    }
    let node_of = |k: usize| format!("node-{}", k % nodes);
    let ip_of = |k: usize| {
        format!(
            "10.{}.{}.{}",
            244 + (k >> 16) % 8,
            (k >> 8) & 0xff,
            k & 0xff
        )
    };
    let host_of = |k: usize| format!("192.168.{}.{}", (k % nodes) >> 8, (k % nodes) & 0xff);
    let mut k = 0;
    if pods_per_node >= 2 {
        let ds_uid = util::uid();
        let mut ds = daemonset("kube-system", "kube-proxy", nodes as u32);
        ds["metadata"]["uid"] = ds_uid.clone().into();
        out(ds);
        for _ in 0..nodes {
            let opts = PodOpts {
                owner: Some(("DaemonSet".into(), "kube-proxy".into(), ds_uid.clone())),
                pod_ip: host_of(k),
                host_ip: host_of(k),
                ..PodOpts::default()
            };
            out(pod_with(
                "kube-system",
                &format!("kube-proxy-{}", util::suffix(k as u64, 5)),
                &node_of(k),
                &opts,
            ));
            k += 1;
        }
    }
    let mut d = 0;
    while k < total {
        let ns = &app_namespaces[d % app_namespaces.len()];
        let dname = format!("svc-{d}");
        let replicas = (total - k).min(10);
        let d_uid = util::uid();
        let rs_name = format!("{dname}-{}", util::suffix(d as u64 + 1, 10));
        let rs_uid = util::uid();
        let mut dep = deployment(ns, &dname, replicas as u32);
        dep["metadata"]["uid"] = d_uid.clone().into();
        out(dep);
        let mut rs = replicaset(ns, &rs_name, replicas as u32, Some((&dname, &d_uid)));
        rs["metadata"]["uid"] = rs_uid.clone().into();
        out(rs);
        let mut eps = Vec::with_capacity(replicas);
        for r in 0..replicas {
            let crash = k % 37 == 36;
            let pending = k % 50 == 49;
            let opts = PodOpts {
                containers: k % 3 + 1,
                phase: if pending {
                    "Pending".into()
                } else {
                    "Running".into()
                },
                ready: !crash && !pending,
                restarts: if crash { 7 } else { (k % 5 == 0) as u32 },
                waiting_reason: crash.then(|| "CrashLoopBackOff".into()),
                owner: Some(("ReplicaSet".into(), rs_name.clone(), rs_uid.clone())),
                labels: vec![("app.kubernetes.io/instance".into(), "shop".into())],
                pod_ip: ip_of(k),
                host_ip: host_of(k),
            };
            let pname = format!("{rs_name}-{}", util::suffix((k * 31 + r) as u64, 5));
            out(pod_with(ns, &pname, &node_of(k), &opts));
            eps.push((ip_of(k), node_of(k), opts.ready));
            if crash {
                out(event(
                    ns,
                    &format!("{pname}.{:x}", k),
                    ("Pod", &pname),
                    "BackOff",
                    "Back-off restarting failed container app",
                    "Warning",
                    7,
                ));
            }
            k += 1;
        }
        let ty = match d % 25 {
            0 => "LoadBalancer",
            5 | 15 => "NodePort",
            _ => "ClusterIP",
        };
        out(service(ns, &dname, ty));
        let eps_ref: Vec<(&str, &str, bool)> = eps
            .iter()
            .map(|(ip, n, r)| (ip.as_str(), n.as_str(), *r))
            .collect();
        out(endpointslice(
            ns,
            &format!("{dname}-{}", util::suffix(d as u64 + 7, 5)),
            &dname,
            &eps_ref,
        ));
        out(event(
            ns,
            &format!("{dname}.{:x}", d),
            ("Deployment", &dname),
            "ScalingReplicaSet",
            &format!("Scaled up replica set {rs_name} to {replicas}"),
            "Normal",
            1,
        ));
        d += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_shape() {
        let objs = cluster(4, 5);
        let pods: Vec<&Value> = objs.iter().filter(|o| o["kind"] == "Pod").collect();
        assert_eq!(pods.len(), 20);
        for n in 0..4 {
            let on = pods
                .iter()
                .filter(|p| p["spec"]["nodeName"] == format!("node-{n}"))
                .count();
            assert_eq!(on, 5);
        }
        assert_eq!(objs.iter().filter(|o| o["kind"] == "Node").count(), 4);
        let p = pods[5];
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "250m"
        );
        assert!(p["metadata"]["managedFields"].is_array());
        assert!(p["metadata"]["ownerReferences"][0]["uid"].is_string());
    }

    #[test]
    fn pod_variants() {
        let p = pod_with(
            "ns",
            "p",
            "n",
            &PodOpts {
                containers: 3,
                waiting_reason: Some("CrashLoopBackOff".into()),
                restarts: 4,
                ..PodOpts::default()
            },
        );
        let cs = &p["status"]["containerStatuses"];
        assert_eq!(cs.as_array().map(Vec::len), Some(3));
        assert_eq!(cs[0]["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs[0]["ready"], false);
        assert_eq!(cs[1]["ready"], true);
        assert_eq!(cs[0]["restartCount"], 4);
        let ready = p["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned();
        assert_eq!(ready.map(|c| c["status"].clone()), Some(json!("False")));
        let size = p.to_string().len();
        assert!(size > 3000, "a realistic pod is several KiB, got {size}");
    }
}
