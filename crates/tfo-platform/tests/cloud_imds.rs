//! Cloud detection against loopback stand-ins for each instance metadata service. Each
//! stand-in enforces its service's protocol (AWS token flow, GCP and Azure headers), so a
//! client that skipped a step would get nothing.

mod common;

use std::time::Duration;

use common::{Reply, StandIn, fixture};
use serde_json::json;
use tfo_platform::detect::virt;
use tfo_platform::{CloudMetadataSettings, CloudProvider, detect_cloud};

async fn aws_stand_in() -> StandIn {
    StandIn::start(|r, _| match (r.method.as_str(), r.path()) {
        ("PUT", "/latest/api/token") => {
            if r.header("x-aws-ec2-metadata-token-ttl-seconds").is_some() {
                Reply::text(200, "AQAEAtoken==")
            } else {
                Reply::text(400, "missing ttl")
            }
        }
        ("GET", "/latest/dynamic/instance-identity/document") => {
            if r.header("x-aws-ec2-metadata-token") == Some("AQAEAtoken==") {
                Reply::json(
                    200,
                    json!({"instanceId": "i-0123456789abcdef0", "instanceType": "m5.large",
                           "region": "us-west-2", "availabilityZone": "us-west-2b",
                           "accountId": "123456789012"}),
                )
            } else {
                Reply::text(401, "")
            }
        }
        _ => Reply::text(404, ""),
    })
    .await
}

async fn gcp_stand_in() -> StandIn {
    StandIn::start(|r, _| {
        if r.header("metadata-flavor") != Some("Google") {
            return Reply::text(403, "Missing Metadata-Flavor:Google header.");
        }
        if r.path() != "/computeMetadata/v1/instance/" {
            return Reply::text(404, "");
        }
        Reply::json(
            200,
            json!({"id": 4520031799277581759u64,
                   "machineType": "projects/123456/machineTypes/e2-standard-4",
                   "zone": "projects/123456/zones/europe-west1-b", "hostname": "x"}),
        )
        .with_header("Metadata-Flavor", "Google")
    })
    .await
}

async fn azure_stand_in() -> StandIn {
    StandIn::start(|r, _| {
        if r.header("metadata") != Some("true") {
            return Reply::json(400, json!({"error": "Bad request. Required metadata header not specified"}));
        }
        if r.path() != "/metadata/instance" || !r.target.contains("api-version=") {
            return Reply::text(404, "");
        }
        Reply::json(
            200,
            json!({"compute": {"vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
                               "vmSize": "Standard_D2s_v3", "location": "westeurope", "zone": "2"}}),
        )
    })
    .await
}

/// A loopback port nothing listens on.
fn refused() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn settings(aws: &str, gcp: &str, azure: &str) -> CloudMetadataSettings {
    CloudMetadataSettings {
        enabled: true,
        aws_base: aws.into(),
        gcp_base: gcp.into(),
        azure_base: azure.into(),
        timeout: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn aws_imdsv2_token_flow() {
    let aws = aws_stand_in().await;
    let c = detect_cloud(
        &settings(&aws.url(), &refused(), &refused()),
        Some(CloudProvider::Aws),
    )
    .await
    .expect("aws");
    assert_eq!(c.provider, CloudProvider::Aws);
    assert_eq!(c.instance_id.as_deref(), Some("i-0123456789abcdef0"));
    assert_eq!(c.instance_type.as_deref(), Some("m5.large"));
    assert_eq!(c.region.as_deref(), Some("us-west-2"));
    assert_eq!(c.zone.as_deref(), Some("us-west-2b"));
    assert_eq!(c.source, "imds");
    let rec = aws.recorded();
    assert_eq!(rec.len(), 2);
    assert_eq!(
        (rec[0].method.as_str(), rec[0].path()),
        ("PUT", "/latest/api/token")
    );
    assert_eq!(
        rec[1].header("x-aws-ec2-metadata-token"),
        Some("AQAEAtoken==")
    );
}

#[tokio::test]
async fn gcp_requires_the_flavor_header() {
    let gcp = gcp_stand_in().await;
    let c = detect_cloud(
        &settings(&refused(), &gcp.url(), &refused()),
        Some(CloudProvider::Gcp),
    )
    .await
    .expect("gcp");
    assert_eq!(c.provider, CloudProvider::Gcp);
    assert_eq!(c.instance_id.as_deref(), Some("4520031799277581759"));
    assert_eq!(c.instance_type.as_deref(), Some("e2-standard-4"));
    assert_eq!(c.zone.as_deref(), Some("europe-west1-b"));
    assert_eq!(c.region.as_deref(), Some("europe-west1"));
}

#[tokio::test]
async fn azure_requires_the_metadata_header() {
    let az = azure_stand_in().await;
    let c = detect_cloud(
        &settings(&refused(), &refused(), &az.url()),
        Some(CloudProvider::Azure),
    )
    .await
    .expect("azure");
    assert_eq!(c.provider, CloudProvider::Azure);
    assert_eq!(
        c.instance_id.as_deref(),
        Some("02aab8a4-74ef-476e-8182-f6d2ba4166a6")
    );
    assert_eq!(c.instance_type.as_deref(), Some("Standard_D2s_v3"));
    assert_eq!(c.region.as_deref(), Some("westeurope"));
    assert_eq!(c.zone.as_deref(), Some("2"));
}

#[tokio::test]
async fn without_a_hint_all_services_are_asked_and_the_one_that_answers_wins() {
    let (aws, gcp, az) = (
        aws_stand_in().await,
        gcp_stand_in().await,
        azure_stand_in().await,
    );
    // Services that are not this cloud answer 404 or without the GCP flavor header.
    let other = StandIn::start(|_, _| Reply::text(404, "")).await;
    let c = detect_cloud(&settings(&other.url(), &other.url(), &az.url()), None)
        .await
        .expect("found");
    assert_eq!(c.provider, CloudProvider::Azure);
    assert!(other.recorded().len() >= 2, "aws and gcp were asked too");
    let c = detect_cloud(&settings(&other.url(), &gcp.url(), &other.url()), None)
        .await
        .expect("found");
    assert_eq!(c.provider, CloudProvider::Gcp);
    let c = detect_cloud(&settings(&aws.url(), &other.url(), &other.url()), None)
        .await
        .expect("found");
    assert_eq!(c.provider, CloudProvider::Aws);
}

#[tokio::test]
async fn a_dmi_hint_asks_only_that_service() {
    let (aws, gcp, az) = (
        aws_stand_in().await,
        gcp_stand_in().await,
        azure_stand_in().await,
    );
    let c = detect_cloud(
        &settings(&aws.url(), &gcp.url(), &az.url()),
        Some(CloudProvider::Gcp),
    )
    .await
    .expect("gcp");
    assert_eq!(c.provider, CloudProvider::Gcp);
    assert_eq!(aws.recorded().len(), 0);
    assert_eq!(az.recorded().len(), 0);
    // The hinted service down: the provider still comes from DMI, without instance data.
    let c = detect_cloud(
        &settings(&aws.url(), &refused(), &az.url()),
        Some(CloudProvider::Gcp),
    )
    .await
    .expect("dmi");
    assert_eq!(
        (c.provider, c.source, c.instance_id),
        (CloudProvider::Gcp, "dmi", None)
    );
}

#[tokio::test]
async fn hyperv_on_premises_is_not_azure() {
    let v = virt::detect(&fixture("virt/hyperv-onprem"));
    assert_eq!(v.virtualization_type.as_deref(), Some("hyperv"));
    // No metadata service answers on premises.
    let other = StandIn::start(|_, _| Reply::text(404, "")).await;
    let c = detect_cloud(
        &settings(&other.url(), &other.url(), &other.url()),
        v.cloud_hint,
    )
    .await;
    assert_eq!(c, None);
    // Azure's asset tag makes the same Hyper-V guest an Azure VM.
    let v = virt::detect(&fixture("virt/azure"));
    let c = detect_cloud(&settings(&refused(), &refused(), &refused()), v.cloud_hint).await;
    assert_eq!(c.map(|c| c.provider), Some(CloudProvider::Azure));
}

#[tokio::test]
async fn disabled_makes_no_request() {
    let (aws, gcp, az) = (
        aws_stand_in().await,
        gcp_stand_in().await,
        azure_stand_in().await,
    );
    let mut s = settings(&aws.url(), &gcp.url(), &az.url());
    s.enabled = false;
    assert_eq!(detect_cloud(&s, None).await, None);
    let c = detect_cloud(&s, Some(CloudProvider::Aws))
        .await
        .expect("dmi");
    assert_eq!(c.source, "dmi");
    assert_eq!(
        aws.recorded().len() + gcp.recorded().len() + az.recorded().len(),
        0
    );
}
