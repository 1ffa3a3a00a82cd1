//! Cloud provider, instance id and type, region and zone from the instance metadata
//! services (IMDS), asked once at start.
//!
//! - AWS: IMDSv2 only. `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`,
//!   then `GET /latest/dynamic/instance-identity/document` with `X-aws-ec2-metadata-token`.
//! - GCP: `GET /computeMetadata/v1/instance/?recursive=true` with `Metadata-Flavor: Google`;
//!   the reply must carry the same header back (anything else is not GCE).
//! - Azure: `GET /metadata/instance?api-version=2021-02-01` with `Metadata: true`; the
//!   reply must hold `compute.vmId`.
//!
//! When DMI names the cloud only that service is asked (and the provider is reported even
//! if it does not answer); otherwise all three are asked concurrently. Each request has a
//! short timeout (300 ms by default), so a host outside any cloud pays that once.

use std::time::Duration;

use reqwest::header::HeaderValue;
use serde::Serialize;
use serde_json::Value;

use crate::client::empty_tls_config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudProvider {
    Aws,
    Gcp,
    Azure,
}

impl CloudProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            CloudProvider::Aws => "aws",
            CloudProvider::Gcp => "gcp",
            CloudProvider::Azure => "azure",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudInfo {
    pub provider: CloudProvider,
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    /// `imds` when the metadata service answered, `dmi` when only DMI strings name the
    /// cloud (service disabled, blocked, or slow).
    pub source: &'static str,
}

/// Where and how to ask. The base URLs are overridable so tests can point them at
/// loopback stand-ins.
#[derive(Debug, Clone)]
pub struct CloudMetadataSettings {
    /// `heartbeat.cloud_metadata`; when false no request is made.
    pub enabled: bool,
    pub aws_base: String,
    pub gcp_base: String,
    pub azure_base: String,
    /// Per request.
    pub timeout: Duration,
}

impl Default for CloudMetadataSettings {
    fn default() -> Self {
        CloudMetadataSettings {
            enabled: true,
            aws_base: "http://169.254.169.254".into(),
            // GCE's metadata server answers on the link-local address too; using it avoids
            // a DNS lookup of metadata.google.internal outside GCP.
            gcp_base: "http://169.254.169.254".into(),
            azure_base: "http://169.254.169.254".into(),
            timeout: Duration::from_millis(300),
        }
    }
}

/// Largest metadata document read.
const MAX_BODY: usize = 256 * 1024;

/// Detects the cloud. `hint` comes from [`VirtualizationInfo::cloud_hint`](
/// crate::detect::virt::VirtualizationInfo). Never fails: `None` means no cloud found.
pub async fn detect_cloud(
    settings: &CloudMetadataSettings,
    hint: Option<CloudProvider>,
) -> Option<CloudInfo> {
    let dmi_only = hint.map(|p| CloudInfo {
        provider: p,
        instance_id: None,
        instance_type: None,
        region: None,
        zone: None,
        source: "dmi",
    });
    if !settings.enabled {
        return dmi_only;
    }
    let client = match client(settings.timeout) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cloud metadata: cannot build an HTTP client: {e}");
            return dmi_only;
        }
    };
    if let Some(p) = hint {
        return query(&client, settings, p).await.or(dmi_only);
    }
    let (aws, gcp, azure) = tokio::join!(
        query(&client, settings, CloudProvider::Aws),
        query(&client, settings, CloudProvider::Gcp),
        query(&client, settings, CloudProvider::Azure),
    );
    aws.or(gcp).or(azure)
}

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(empty_tls_config().map_err(|e| e.0)?)
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        // IMDS never redirects; following one could leave the link-local network.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

async fn query(
    client: &reqwest::Client,
    s: &CloudMetadataSettings,
    p: CloudProvider,
) -> Option<CloudInfo> {
    let r = match p {
        CloudProvider::Aws => aws(client, s.aws_base.trim_end_matches('/')).await,
        CloudProvider::Gcp => gcp(client, s.gcp_base.trim_end_matches('/')).await,
        CloudProvider::Azure => azure(client, s.azure_base.trim_end_matches('/')).await,
    };
    match r {
        Ok(info) => Some(info),
        Err(e) => {
            tracing::debug!(provider = p.as_str(), "cloud metadata: {e}");
            None
        }
    }
}

async fn body(resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    let mut resp = resp;
    let mut out = Vec::new();
    while let Some(c) = resp
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if out.len() + c.len() > MAX_BODY {
            return Err("metadata document too large".into());
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn aws(c: &reqwest::Client, base: &str) -> Result<CloudInfo, String> {
    let resp = c
        .put(format!("{base}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let token = String::from_utf8(body(resp).await?).map_err(|_| "token is not text")?;
    let token = HeaderValue::from_str(token.trim()).map_err(|_| "token is not a header value")?;
    let resp = c
        .get(format!("{base}/latest/dynamic/instance-identity/document"))
        .header("X-aws-ec2-metadata-token", token)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let doc: Value = serde_json::from_slice(&body(resp).await?).map_err(|e| e.to_string())?;
    let instance_id = str_field(&doc, "instanceId").ok_or("no instanceId in the document")?;
    Ok(CloudInfo {
        provider: CloudProvider::Aws,
        instance_id: Some(instance_id),
        instance_type: str_field(&doc, "instanceType"),
        region: str_field(&doc, "region"),
        zone: str_field(&doc, "availabilityZone"),
        source: "imds",
    })
}

async fn gcp(c: &reqwest::Client, base: &str) -> Result<CloudInfo, String> {
    let resp = c
        .get(format!(
            "{base}/computeMetadata/v1/instance/?recursive=true&alt=json"
        ))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let flavor_ok = resp
        .headers()
        .get("metadata-flavor")
        .is_some_and(|v| v.as_bytes() == b"Google");
    if !flavor_ok {
        return Err("reply without Metadata-Flavor: Google".into());
    }
    let doc: Value = serde_json::from_slice(&body(resp).await?).map_err(|e| e.to_string())?;
    let id = str_field(&doc, "id").ok_or("no instance id")?;
    // "projects/123/machineTypes/e2-medium", "projects/123/zones/us-central1-a".
    let last = |k: &str| str_field(&doc, k).and_then(|s| s.rsplit('/').next().map(str::to_string));
    let zone = last("zone");
    let region = zone
        .as_deref()
        .and_then(|z| z.rsplit_once('-'))
        .map(|(r, _)| r.to_string());
    Ok(CloudInfo {
        provider: CloudProvider::Gcp,
        instance_id: Some(id),
        instance_type: last("machineType"),
        region,
        zone,
        source: "imds",
    })
}

async fn azure(c: &reqwest::Client, base: &str) -> Result<CloudInfo, String> {
    let resp = c
        .get(format!(
            "{base}/metadata/instance?api-version=2021-02-01&format=json"
        ))
        .header("Metadata", "true")
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let doc: Value = serde_json::from_slice(&body(resp).await?).map_err(|e| e.to_string())?;
    let compute = doc.get("compute").ok_or("no compute section")?;
    let vm_id = str_field(compute, "vmId").ok_or("no compute.vmId")?;
    let region = str_field(compute, "location");
    // Azure zones are "1", "2", "3" within the region; empty when not zonal.
    let zone = str_field(compute, "zone");
    Ok(CloudInfo {
        provider: CloudProvider::Azure,
        instance_id: Some(vm_id),
        instance_type: str_field(compute, "vmSize"),
        region,
        zone,
        source: "imds",
    })
}
