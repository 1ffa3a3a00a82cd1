//! rustls client configuration for Hubble Relay (TLS, optionally mTLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// `collectors.ebpf.hubble.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA bundle to verify Relay with; none: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (mTLS): both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name to verify (and send as SNI) instead of the address's host; Relay's
    /// certificate is usually `*.hubble-relay.cilium.io`.
    pub server_name: Option<String>,
}

const KEY: &str = "collectors.ebpf.hubble.tls";

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{KEY}.{what} {}: {e}", path.display()))
}

pub(crate) fn connector(
    t: &TlsOptions,
    host: &str,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &t.ca_file {
        Some(ca) => {
            let (added, _) = roots.add_parsable_certificates(certs(ca, "ca_file")?);
            if added == 0 {
                return Err(format!(
                    "{KEY}.ca_file {}: no usable certificate in the file",
                    ca.display()
                ));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(format!(
                    "TLS is enabled but the system has no CA certificates; set {KEY}.ca_file"
                ));
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let mut cfg = match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert, "cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("{KEY}.key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{KEY} client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(format!(
                "{KEY}: cert_file and key_file must be set together"
            ));
        }
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let name = t.server_name.as_deref().unwrap_or(host);
    let name = ServerName::try_from(name.to_string())
        .map_err(|e| format!("{KEY}.server_name {name:?}: {e}"))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
}
