//! The slim types against realistic API JSON, and malformed input as errors (never panics).

use tfo_kube::model::meta::OwnerKind;
use tfo_kube::model::node::NodeCondition;
use tfo_kube::model::pod::{ContainerState, CpuMemory};
use tfo_kube::model::service::{AddressType, ClusterIp};
use tfo_kube::model::*;

const POD: &str = include_str!("fixtures/pod.json");
const NODE: &str = include_str!("fixtures/node.json");

#[test]
fn realistic_pod() {
    let p: Pod = serde_json::from_str(POD).unwrap();
    assert_eq!(&*p.metadata.name, "checkout-7c9d8f6b5-x2k9p");
    assert_eq!(p.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(&*p.metadata.uid, "5e2a9c4d-8f1b-4a7e-b3d6-2c9e8f1a7b4c");
    assert_eq!(&*p.metadata.resource_version, "1849302");
    assert_eq!(p.metadata.creation_timestamp, Some(1_714_558_830));
    let owner = p.metadata.controller.as_ref().unwrap();
    assert_eq!(
        (owner.kind.clone(), &*owner.name),
        (OwnerKind::ReplicaSet, "checkout-7c9d8f6b5")
    );
    assert_eq!(p.spec.node_name.as_deref(), Some("worker-3"));
    assert_eq!(p.status.phase, PodPhase::Running);
    assert_eq!(p.status.qos_class, Some(QosClass::Burstable));
    assert_eq!(p.status.start_time, Some(1_714_558_830));
    assert_eq!(p.status.conditions.ready, Some(ConditionStatus::False));
    assert_eq!(p.status.conditions.scheduled, Some(ConditionStatus::True));
    assert_eq!(p.status.conditions.initialized, Some(ConditionStatus::True));
    assert_eq!(p.spec.containers.len(), 2);
    let c = &p.spec.containers[0];
    assert_eq!(&*c.name, "checkout");
    assert_eq!(
        c.resources.requests,
        CpuMemory {
            cpu: Some(0.25),
            memory: Some(256 << 20)
        }
    );
    assert_eq!(
        c.resources.limits,
        CpuMemory {
            cpu: None,
            memory: Some(512 << 20)
        }
    );
    assert_eq!(p.spec.containers[1].resources.limits.cpu, Some(1.0));
    let s = &p.status.container_statuses;
    assert_eq!(s.len(), 2);
    assert_eq!(
        (&*s[0].name, s[0].ready, s[0].restart_count),
        ("checkout", false, 3)
    );
    assert_eq!(
        s[0].state,
        ContainerState::Waiting {
            reason: Some("CrashLoopBackOff".into())
        }
    );
    assert_eq!(s[0].last_terminated_reason.as_deref(), Some("OOMKilled"));
    assert_eq!(s[1].state, ContainerState::Running);
    assert_eq!(s[1].last_terminated_reason, None);
    assert_eq!(p.ready_containers(), 1);
}

#[test]
fn minimal_and_null_fields() {
    let p: Pod = serde_json::from_str(r#"{"metadata":{"name":"p"}}"#).unwrap();
    assert_eq!(p.status.phase, PodPhase::Unknown);
    assert!(p.spec.containers.is_empty());
    let p: Pod = serde_json::from_str(
        r#"{"metadata":{"name":"p","ownerReferences":null},"spec":{"containers":null,"nodeName":null},
            "status":{"phase":"Evicted?","conditions":null,"containerStatuses":null}}"#,
    )
    .unwrap();
    assert_eq!(p.status.phase, PodPhase::Unknown);
    let p: Pod = serde_json::from_str(r#"{"spec":null,"status":null}"#).unwrap();
    assert_eq!(p, Pod::default());
    let p: Pod = serde_json::from_str(
        r#"{"status":{"phase":"Succeeded","containerStatuses":[{"name":"a","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]}}"#,
    )
    .unwrap();
    assert_eq!(
        p.status.container_statuses[0].state,
        ContainerState::Terminated {
            reason: Some("Completed".into()),
            exit_code: 0
        }
    );
}

#[test]
fn malformed_pods_are_errors() {
    // serde's derived structs also accept a JSON array (fields by position), so `[]` reads
    // as an empty object: harmless, and not worth a hand-written visitor per kind.
    for bad in [
        r#""pod""#,
        r#"{"metadata":{"name":["a"]}}"#,
        r#"{"metadata":{"uid":7}}"#,
        r#"{"metadata":{"creationTimestamp":"last tuesday"}}"#,
        r#"{"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"lots"}}}]}}"#,
        r#"{"spec":{"containers":[{"name":"a","resources":{"limits":{"memory":"-1Gi"}}}]}}"#,
        r#"{"spec":{"containers":[{"name":"a","resources":{"requests":{"memory":"1GB"}}}]}}"#,
        r#"{"spec":{"containers":{"name":"a"}}}"#,
        r#"{"status":{"phase":7}}"#,
        r#"{"status":{"containerStatuses":[{"name":"a","restartCount":-1}]}}"#,
        r#"{"status":{"containerStatuses":[{"name":"a","restartCount":"3"}]}}"#,
        r#"{"status":{"conditions":[{"type":"Ready"}]}}"#,
        r#"{"status":{"startTime":12}}"#,
        r#"{"metadata":{"name":"p""#,
    ] {
        assert!(serde_json::from_str::<Pod>(bad).is_err(), "{bad}");
    }
}

#[test]
fn realistic_node() {
    let n: Node = serde_json::from_str(NODE).unwrap();
    assert_eq!(&*n.metadata.name, "worker-3");
    assert_eq!(n.metadata.namespace, None);
    assert!(n.spec.unschedulable);
    assert_eq!(n.status.capacity.cpu, Some(4.0));
    assert_eq!(n.status.capacity.memory, Some(16_049_904 * 1024));
    assert_eq!(n.status.capacity.pods, Some(110));
    assert_eq!(
        n.status.capacity.ephemeral_storage,
        Some(103_609_600 * 1024)
    );
    assert_eq!(n.status.allocatable.cpu, Some(3.92));
    assert_eq!(n.status.allocatable.ephemeral_storage, Some(95_491_281_146));
    assert_eq!(n.status.conditions.len(), 4);
    assert_eq!(
        n.status.conditions[3],
        NodeCondition {
            kind: "Ready".into(),
            status: ConditionStatus::True
        }
    );
    assert_eq!(n.condition("Ready"), Some(ConditionStatus::True));
    assert_eq!(n.condition("MemoryPressure"), Some(ConditionStatus::False));
    assert_eq!(n.condition("Nope"), None);
    assert_eq!(
        n.status.node_info.kubelet_version.as_deref(),
        Some("v1.33.1")
    );
    assert_eq!(n.status.node_info.architecture.as_deref(), Some("amd64"));
    assert!(serde_json::from_str::<Node>(r#"{"status":{"capacity":{"pods":"many"}}}"#).is_err());
    assert!(
        serde_json::from_str::<Node>(r#"{"status":{"conditions":[{"status":"True"}]}}"#).is_err()
    );
}

#[test]
fn namespace() {
    let n: Namespace = serde_json::from_str(
        r#"{"metadata":{"name":"shop","uid":"u","labels":{"kubernetes.io/metadata.name":"shop"}},
            "spec":{"finalizers":["kubernetes"]},"status":{"phase":"Terminating"}}"#,
    )
    .unwrap();
    assert_eq!(n.status.phase, NamespacePhase::Terminating);
    assert_eq!(n.status.phase.as_str(), "Terminating");
}

#[test]
fn workloads() {
    let d: Deployment = serde_json::from_str(
        r#"{"metadata":{"name":"checkout","namespace":"shop"},
            "spec":{"replicas":3,"selector":{"matchLabels":{"app":"c"}},"template":{"spec":{"containers":[{"name":"c"}]}}},
            "status":{"availableReplicas":2,"observedGeneration":4,"readyReplicas":2,"replicas":3,"unavailableReplicas":1,"updatedReplicas":3,
                      "conditions":[{"type":"Available","status":"True"}]}}"#,
    )
    .unwrap();
    assert_eq!(d.spec.replicas, Some(3));
    assert_eq!(
        (
            d.status.replicas,
            d.status.ready_replicas,
            d.status.available_replicas,
            d.status.updated_replicas,
            d.status.unavailable_replicas
        ),
        (3, 2, 2, 3, 1)
    );
    let rs: ReplicaSet = serde_json::from_str(
        r#"{"metadata":{"name":"checkout-7c9d8f6b5","ownerReferences":[{"kind":"Deployment","name":"checkout","controller":true}]},
            "spec":{"replicas":3},"status":{"replicas":3,"readyReplicas":2,"availableReplicas":2,"fullyLabeledReplicas":3}}"#,
    )
    .unwrap();
    assert_eq!(rs.metadata.controller.unwrap().kind, OwnerKind::Deployment);
    assert_eq!(rs.status.ready_replicas, 2);
    let ss: StatefulSet = serde_json::from_str(
        r#"{"spec":{"replicas":2},"status":{"replicas":2,"readyReplicas":1,"currentReplicas":2,"updatedReplicas":2,"availableReplicas":1}}"#,
    )
    .unwrap();
    assert_eq!(
        (ss.status.current_replicas, ss.status.ready_replicas),
        (2, 1)
    );
    let ds: DaemonSet = serde_json::from_str(
        r#"{"status":{"currentNumberScheduled":3,"desiredNumberScheduled":4,"numberMisscheduled":1,"numberReady":3,"updatedNumberScheduled":2,"numberAvailable":3,"numberUnavailable":1}}"#,
    )
    .unwrap();
    assert_eq!(
        (
            ds.status.desired_number_scheduled,
            ds.status.number_misscheduled
        ),
        (4, 1)
    );
    let j: Job = serde_json::from_str(
        r#"{"metadata":{"ownerReferences":[{"kind":"CronJob","name":"nightly","controller":true}]},
            "spec":{"completions":5,"parallelism":2,"backoffLimit":6},
            "status":{"active":2,"succeeded":3,"failed":1,"startTime":"2024-05-01T10:20:30Z"}}"#,
    )
    .unwrap();
    assert_eq!((j.spec.completions, j.spec.parallelism), (Some(5), Some(2)));
    assert_eq!(
        (j.status.active, j.status.succeeded, j.status.failed),
        (2, 3, 1)
    );
    assert_eq!(j.status.start_time, Some(1_714_558_830));
    let cj: CronJob = serde_json::from_str(
        r#"{"spec":{"schedule":"0 3 * * *","suspend":true,"jobTemplate":{}},
            "status":{"active":[{"kind":"Job","name":"nightly-1"},{"kind":"Job","name":"nightly-2"}],"lastScheduleTime":"2024-05-01T03:00:00Z"}}"#,
    )
    .unwrap();
    assert!(cj.spec.suspend);
    assert_eq!(cj.status.active_jobs, 2);
    assert_eq!(cj.status.last_schedule_time, Some(1_714_532_400));
    assert!(serde_json::from_str::<Deployment>(r#"{"status":{"replicas":"3"}}"#).is_err());
    assert!(serde_json::from_str::<CronJob>(r#"{"status":{"active":3}}"#).is_err());
}

#[test]
fn services_and_slices() {
    let s: Service = serde_json::from_str(
        r#"{"metadata":{"name":"web","namespace":"shop"},
            "spec":{"type":"LoadBalancer","clusterIP":"10.96.0.12","clusterIPs":["10.96.0.12"],"ports":[{"port":80},{"port":443}],"selector":{"app":"web"}},
            "status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.7"}]}}}"#,
    )
    .unwrap();
    assert_eq!(s.spec.kind, ServiceType::LoadBalancer);
    assert_eq!(s.spec.cluster_ip, ClusterIp::Assigned);
    assert_eq!((s.spec.ports, s.status.load_balancer.ingress), (2, 1));
    let s: Service = serde_json::from_str(
        r#"{"spec":{"clusterIP":"None","ports":null},"status":{"loadBalancer":{}}}"#,
    )
    .unwrap();
    assert_eq!(
        (s.spec.kind, s.spec.cluster_ip, s.spec.ports),
        (ServiceType::ClusterIP, ClusterIp::Headless, 0)
    );
    let e: EndpointSlice = serde_json::from_str(
        r#"{"addressType":"IPv4","apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
            "metadata":{"name":"web-abcde","namespace":"shop","uid":"u",
              "labels":{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"web"},
              "ownerReferences":[{"kind":"Service","name":"web","controller":true}]},
            "endpoints":[
              {"addresses":["10.244.1.17"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"worker-3"},
              {"addresses":["10.244.2.3"],"conditions":{"ready":false,"serving":true,"terminating":true}},
              {"addresses":["10.244.2.4"],"conditions":{}}],
            "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}"#,
    )
    .unwrap();
    assert_eq!(e.service_name.as_deref(), Some("web"));
    assert_eq!(e.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(e.address_type, AddressType::IPv4);
    assert_eq!(
        (e.endpoints, e.ready, e.serving, e.terminating),
        (3, 2, 3, 1)
    );
    let e: EndpointSlice =
        serde_json::from_str(r#"{"addressType":"IPv6","endpoints":null}"#).unwrap();
    assert_eq!((e.service_name, e.endpoints), (None, 0));
    assert!(
        serde_json::from_str::<EndpointSlice>(r#"{"endpoints":[{"conditions":{"ready":"yes"}}]}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<EndpointSlice>(
            r#"{"metadata":{"labels":{"kubernetes.io/service-name":1}}}"#
        )
        .is_err()
    );
}

#[test]
fn quota() {
    let q: ResourceQuota = serde_json::from_str(
        r#"{"metadata":{"name":"compute","namespace":"shop"},
            "spec":{"hard":{"pods":"20","requests.cpu":"4","limits.memory":"16Gi"}},
            "status":{"hard":{"pods":"20","requests.cpu":"4","limits.memory":"16Gi"},
                      "used":{"pods":"7","requests.cpu":"1250m","limits.memory":"3Gi"}}}"#,
    )
    .unwrap();
    assert_eq!(q.spec.hard.get("pods"), Some(&20.0));
    assert_eq!(q.status.hard.get("limits.memory"), Some(&17_179_869_184.0));
    assert_eq!(q.status.used.get("requests.cpu"), Some(&1.25));
    assert_eq!(q.status.used.len(), 3);
    assert!(
        serde_json::from_str::<ResourceQuota>(r#"{"status":{"used":{"pods":"seven"}}}"#).is_err()
    );
    assert!(serde_json::from_str::<ResourceQuota>(r#"{"status":{"used":["pods"]}}"#).is_err());
}

#[test]
fn every_kind_rejects_non_objects_without_panicking() {
    for bad in ["null", "1", "\"x\"", "{", "[1]", "{\"metadata\":1}"] {
        assert!(serde_json::from_str::<Pod>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<Node>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<Namespace>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<Deployment>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<ReplicaSet>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<StatefulSet>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<DaemonSet>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<Job>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<CronJob>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<Service>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<EndpointSlice>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<ResourceQuota>(bad).is_err(), "{bad}");
    }
}
