//! Building the API client (in-cluster service account, or a kubeconfig file) and finding
//! the name of the node this agent runs on.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why no client could be built. Messages name the file and the step that failed; they
/// never include credentials (kube's errors name files and fields, not their contents).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubernetes: cannot read kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubernetes: kubeconfig {path} is not usable: {source}")]
    BadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "kubernetes: not running in a cluster ({source}); set collectors.kubernetes.kubeconfig_path to use a kubeconfig file"
    )]
    InCluster {
        #[source]
        source: kube::config::InClusterError,
    },
    #[error("kubernetes: cannot build the API client: {source}")]
    Build {
        #[source]
        source: kube::Error,
    },
}

/// The client for `kubeconfig_path` (its current context), or the in-cluster service
/// account when the path is empty. Must be called inside a tokio runtime: the client's
/// connection pool spawns its worker there.
pub async fn build_client(kubeconfig_path: &str) -> Result<Client, ClientError> {
    let config = if kubeconfig_path.is_empty() {
        Config::incluster().map_err(|source| ClientError::InCluster { source })?
    } else {
        let path = Path::new(kubeconfig_path);
        let kubeconfig =
            Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
                path: path.to_path_buf(),
                source,
            })?;
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|source| ClientError::BadKubeconfig {
                path: path.to_path_buf(),
                source,
            })?
    };
    client_from(config)
}

/// The client for an explicit config, with kube's built-in retry of 429/503/504 turned
/// off: it retries up to 15 times with delays growing to minutes, inside one request,
/// which would hide an unavailable API server from the stores' status and stretch a
/// Lease renewal far past its deadline. The stores and the elector back off themselves.
pub fn client_from(mut config: Config) -> Result<Client, ClientError> {
    config.default_retry = false;
    Client::try_from(config).map_err(|source| ClientError::Build { source })
}

/// This agent's node: the configured name, else `$NODE_NAME` (the DaemonSet sets it from
/// the downward API, `spec.nodeName`), else `$HOSTNAME` (a pod's hostname is its own name,
/// not the node's, so this last fallback only fits host-network pods and bare hosts).
pub fn node_name(config_value: &str) -> Option<String> {
    node_name_from(config_value, |k| std::env::var(k).ok())
}

fn node_name_from(config_value: &str, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let pick = |v: String| {
        let v = v.trim().to_string();
        (!v.is_empty()).then_some(v)
    };
    pick(config_value.to_string())
        .or_else(|| env("NODE_NAME").and_then(pick))
        .or_else(|| env("HOSTNAME").and_then(pick))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_name_order() {
        let env = |k: &str| match k {
            "NODE_NAME" => Some("from-env".to_string()),
            "HOSTNAME" => Some("host".to_string()),
            _ => None,
        };
        assert_eq!(node_name_from("cfg", env).as_deref(), Some("cfg"));
        assert_eq!(node_name_from("", env).as_deref(), Some("from-env"));
        assert_eq!(
            node_name_from(" ", |k| (k == "HOSTNAME").then(|| "h".into())).as_deref(),
            Some("h")
        );
        assert_eq!(
            node_name_from("", |k| (k == "NODE_NAME").then(|| "".into())),
            None
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn errors_name_the_file() {
        let Err(e) = build_client("/nonexistent/kubeconfig").await else {
            panic!("built a client")
        };
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/kubeconfig"), "{msg}");
        assert!(matches!(e, ClientError::ReadKubeconfig { .. }));
        let dir = std::env::temp_dir().join(format!("tfo-kube-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("kc");
        std::fs::write(
            &p,
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
        )
        .unwrap();
        let Err(e) = build_client(p.to_str().unwrap()).await else {
            panic!("built a client")
        };
        assert!(e.to_string().contains(p.to_str().unwrap()), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
