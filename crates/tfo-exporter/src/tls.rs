//! rustls client configuration shared by both transports, so TLS behaves the same whether
//! the agent speaks gRPC or HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::SetupError;

#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Overrides the name checked against the server certificate, on every transport.
    /// gRPC also sends it as SNI; the HTTP clients (reqwest) send the endpoint's host as
    /// SNI (none for an IP address) and verify the certificate against this name.
    pub server_name: Option<String>,
    pub skip_verify: bool,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a client config. `alpn` is `h2` for gRPC; HTTP leaves it to the client.
pub fn client_config(s: &TlsSettings, alpn: &[&[u8]]) -> Result<ClientConfig, SetupError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(format!("TLS setup: {e}")))?;
    let builder = if s.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else if let Some(name) = &s.server_name {
        // HTTP clients (reqwest) verify against the URL's host and offer no way to
        // change that name, so the verifier itself checks the configured one.
        let name = ServerName::try_from(name.clone())
            .map_err(|e| SetupError(format!("telemetryflow.tls.server_name {name:?}: {e}")))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots(s)?),
            provider(),
        )
        .build()
        .map_err(|e| SetupError(format!("TLS setup: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(VerifyAs { inner, name }))
    } else {
        builder.with_root_certificates(roots(s)?)
    };
    let mut cfg = match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    SetupError(format!(
                        "telemetryflow.tls.cert_file {}: {e}",
                        cert.display()
                    ))
                })?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                SetupError(format!("telemetryflow.tls.key_file {}: {e}", key.display()))
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| SetupError(format!("telemetryflow.tls client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(SetupError(
                "telemetryflow.tls: cert_file and key_file must be set together".into(),
            ));
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

fn roots(s: &TlsSettings) -> Result<RootCertStore, SetupError> {
    let mut store = RootCertStore::empty();
    if let Some(ca) = &s.ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| SetupError(format!("telemetryflow.tls.ca_file {}: {e}", ca.display())))?;
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(SetupError(format!(
                "telemetryflow.tls.ca_file {}: no usable certificate in the file",
                ca.display()
            )));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(found.certs);
        if store.is_empty() {
            return Err(SetupError(
                "TLS is enabled but the system has no CA certificates; set telemetryflow.tls.ca_file".into(),
            ));
        }
    }
    Ok(store)
}

/// The name to verify, from `server_name` or the endpoint host.
pub fn server_name(s: &TlsSettings, host: &str) -> Result<ServerName<'static>, SetupError> {
    let name = s.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_string())
        .map_err(|e| SetupError(format!("telemetryflow.tls.server_name {name:?}: {e}")))
}

/// A client config for clients that only speak plain HTTP: no trust anchors, so building
/// it never depends on a system CA store being present.
pub fn plain_only_config() -> Result<ClientConfig, SetupError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(format!("TLS setup: {e}")))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

/// `tls.server_name`: full WebPKI verification (chain, validity, signatures), but of the
/// configured name instead of the one the client connects to. The SNI sent is still the
/// connection's host (rustls takes it from the connect call, which reqwest makes with the
/// URL host); the gRPC transport connects with the configured name, so both agree there.
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// `skip_verify: true`: accepts any certificate but still checks the handshake signature,
/// so the connection is encrypted, just not authenticated.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
