//! TLS on both transports against a TLS-serving receiver: CA file, mTLS, server name,
//! skip_verify, and refusal of an untrusted certificate.

mod common;

use std::time::Duration;

use common::*;

fn with_tls(cfg: String, tls: &str) -> String {
    cfg.replace("  timeout: 5s\n", &format!("  timeout: 5s\n  tls:\n{tls}"))
}

#[test]
fn grpc_mtls_with_ca_file_and_server_name() {
    let certs = Certs::generate();
    let rx = Receiver::start_tls(&certs, true);
    let tls = format!(
        "    enabled: true\n    ca_file: {}\n    cert_file: {}\n    key_file: {}\n    server_name: localhost\n",
        certs.path("ca.pem"),
        certs.path("client.pem"),
        certs.path("client.key")
    );
    let mut agent = Agent::start(&with_tls(config("grpc", rx.grpc_port, ""), &tls));
    let reqs = rx.wait_until(Duration::from_secs(10), "mTLS export", |r| !r.is_empty());
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(reqs[0]["transport"], "grpc");
    assert!(points_of(&reqs, "system.uptime") > 0);
}

#[test]
fn grpc_mtls_without_client_certificate_is_refused() {
    let certs = Certs::generate();
    let rx = Receiver::start_tls(&certs, true);
    let tls = format!(
        "    enabled: true\n    ca_file: {}\n    server_name: localhost\n",
        certs.path("ca.pem")
    );
    let mut agent = Agent::start(&with_tls(config("grpc", rx.grpc_port, ""), &tls));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        rx.requests().is_empty(),
        "the receiver accepted a client without a certificate"
    );
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
    assert!(
        agent.logs().iter().any(|l| l["outcome"] == "outage"),
        "handshake failures are outages, retried:\n{}",
        agent.raw_log()
    );
}

#[test]
fn http_tls_verifies_the_server_by_ip_san() {
    let certs = Certs::generate();
    let rx = Receiver::start_tls(&certs, false);
    let tls = format!("    enabled: true\n    ca_file: {}\n", certs.path("ca.pem"));
    let mut agent = Agent::start(&with_tls(config("http", rx.http_port, ""), &tls));
    let reqs = rx.wait_until(Duration::from_secs(10), "HTTPS export", |r| !r.is_empty());
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(reqs[0]["path"], "/v2/metrics");
}

#[test]
fn untrusted_certificate_is_refused_unless_skip_verify() {
    let certs = Certs::generate();
    let other = Certs::generate();
    let rx = Receiver::start_tls(&certs, false);
    // Trusting a different CA: nothing may be delivered.
    let tls = format!("    enabled: true\n    ca_file: {}\n", other.path("ca.pem"));
    let mut agent = Agent::start(&with_tls(config("http", rx.http_port, ""), &tls));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        rx.requests().is_empty(),
        "sent to a server whose certificate is not trusted"
    );
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
    assert!(
        agent.raw_log().to_lowercase().contains("certificate"),
        "{}",
        agent.raw_log()
    );

    // skip_verify: delivered, and warned about.
    let mut agent = Agent::start(&with_tls(
        config("grpc", rx.grpc_port, ""),
        "    enabled: true\n    skip_verify: true\n",
    ));
    rx.wait_until(Duration::from_secs(10), "skip_verify export", |r| {
        !r.is_empty()
    });
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert!(agent.raw_log().contains("NOT verified"));
}
