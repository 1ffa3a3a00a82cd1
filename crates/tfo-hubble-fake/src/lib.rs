//! A fake Hubble observer for tests and benchmarks: serves `observer.Observer/GetFlows` on
//! a Unix socket or on loopback TCP (optionally TLS, optionally requiring a client
//! certificate), and answers each call with the next scripted [`Session`]: a list of
//! messages (flows, lost events, Relay node status), sent `repeat` times, then an [`End`]
//! (hold the stream open, close it, or fail it with a gRPC status).
//!
//! The messages are richer than what the agent's client declares (timestamps, addresses,
//! labels, pod names, URLs, DNS names...), as a real Hubble's are. What it does not cover:
//! flow filters, `number`/`since` history, and Relay's multi-node merging.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub mod flows;

/// The generated messages and server.
#[allow(clippy::all)]
pub mod proto {
    pub mod flow {
        tonic::include_proto!("flow");
    }
    pub mod observer {
        tonic::include_proto!("observer");
    }
}

use proto::observer::observer_server::{Observer, ObserverServer};
use proto::observer::{GetFlowsRequest, GetFlowsResponse};

/// How a scripted stream ends once its messages are sent.
#[derive(Debug, Clone)]
pub enum End {
    /// Stays open (as `follow` does) until the fake is killed.
    Hold,
    /// Ends the stream with OK status.
    Close,
    /// Ends the stream with this status.
    Fail(tonic::Code, String),
}

/// What one GetFlows call gets.
#[derive(Debug, Clone)]
pub struct Session {
    pub messages: Vec<GetFlowsResponse>,
    /// How many times `messages` is sent, in order.
    pub repeat: u64,
    pub end: End,
}

impl Session {
    /// `messages` once, then hold the stream open.
    pub fn hold(messages: Vec<GetFlowsResponse>) -> Session {
        Session {
            messages,
            repeat: 1,
            end: End::Hold,
        }
    }
}

#[derive(Default)]
struct Shared {
    sessions: Mutex<VecDeque<Session>>,
    requests: Mutex<Vec<GetFlowsRequest>>,
    sent: AtomicU64,
}

struct Fake {
    shared: Arc<Shared>,
    killed: watch::Receiver<bool>,
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<GetFlowsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Observer for Fake {
    type GetFlowsStream = FlowStream;

    async fn get_flows(
        &self,
        req: Request<GetFlowsRequest>,
    ) -> Result<Response<FlowStream>, Status> {
        self.shared.requests.lock().unwrap().push(req.into_inner());
        let session = self
            .shared
            .sessions
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Session::hold(Vec::new()));
        let (tx, rx) = mpsc::channel(1024);
        let shared = self.shared.clone();
        let mut killed = self.killed.clone();
        tokio::spawn(async move {
            'send: for _ in 0..session.repeat {
                for m in &session.messages {
                    if tx.send(Ok(m.clone())).await.is_err() {
                        return;
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    if *killed.borrow() {
                        break 'send;
                    }
                }
            }
            match session.end {
                End::Hold => {
                    let _ = killed.wait_for(|k| *k).await;
                    let _ = tx
                        .send(Err(Status::unavailable("fake Hubble killed")))
                        .await;
                }
                End::Close => {}
                End::Fail(code, msg) => {
                    let _ = tx.send(Err(Status::new(code, msg))).await;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// PEM files for a TLS server; `client_ca`: require client certificates signed by it.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// A running fake.
pub struct FakeHubble {
    shared: Arc<Shared>,
    kill: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    address: String,
    socket: Option<PathBuf>,
}

impl FakeHubble {
    /// Serves on the Unix socket `path` (replacing a stale one).
    pub async fn unix(path: &Path, sessions: Vec<Session>) -> FakeHubble {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).expect("binding the fake socket");
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let mut f = Self::serve(
            sessions,
            None,
            incoming,
            format!("unix://{}", path.display()),
        );
        f.socket = Some(path.to_path_buf());
        f
    }

    /// Serves on `127.0.0.1` (port 0: any free one), with TLS if `tls` is given.
    pub async fn tcp(port: u16, tls: Option<TlsFiles>, sessions: Vec<Session>) -> FakeHubble {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("binding the fake port");
        let addr = listener.local_addr().unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        Self::serve(sessions, tls, incoming, addr.to_string())
    }

    fn serve<S, IO, E>(
        sessions: Vec<Session>,
        tls: Option<TlsFiles>,
        incoming: S,
        address: String,
    ) -> FakeHubble
    where
        S: Stream<Item = Result<IO, E>> + Send + 'static,
        IO: tokio::io::AsyncRead
            + tokio::io::AsyncWrite
            + tonic::transport::server::Connected
            + Unpin
            + Send
            + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let shared = Arc::new(Shared::default());
        shared.sessions.lock().unwrap().extend(sessions);
        let (kill, killed) = watch::channel(false);
        let fake = Fake {
            shared: shared.clone(),
            killed: killed.clone(),
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(t) = tls {
            let identity = tonic::transport::Identity::from_pem(
                std::fs::read(&t.cert).unwrap(),
                std::fs::read(&t.key).unwrap(),
            );
            let mut cfg = tonic::transport::ServerTlsConfig::new().identity(identity);
            if let Some(ca) = &t.client_ca {
                cfg = cfg.client_ca_root(tonic::transport::Certificate::from_pem(
                    std::fs::read(ca).unwrap(),
                ));
            }
            builder = builder.tls_config(cfg).expect("fake TLS config");
        }
        let mut stop = killed;
        let server = tokio::spawn(async move {
            let _ = builder
                .add_service(ObserverServer::new(fake))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|k| *k).await;
                })
                .await;
        });
        FakeHubble {
            shared,
            kill,
            server,
            address,
            socket: None,
        }
    }

    /// The address for `collectors.ebpf.hubble.address`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Every GetFlows request received, in order.
    pub fn requests(&self) -> Vec<GetFlowsRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Messages handed to the transport so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Adds a session for a later call.
    pub fn push(&self, s: Session) {
        self.shared.sessions.lock().unwrap().push_back(s);
    }

    /// Fails every open stream (UNAVAILABLE), stops listening and removes the socket.
    pub async fn kill(self) {
        let _ = self.kill.send(true);
        let mut server = self.server;
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A throwaway CA with a server certificate for `localhost`, `relay.hubble.test` and
/// `127.0.0.1`, and a client certificate, made with the `openssl` command. Also the agent's
/// black-box TLS tests' PKI (`crates/tfo-agent/tests/common`).
pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub fn generate() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let run = |args: &[&str]| {
            let o = std::process::Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("running openssl");
            assert!(
                o.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut a = vec!["req", "-x509"];
        a.extend(ec);
        a.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tfo-test-ca",
        ]);
        run(&a);
        for (name, usage, san) in [
            (
                "server",
                "serverAuth",
                "subjectAltName=DNS:localhost,DNS:relay.hubble.test,IP:127.0.0.1\n",
            ),
            ("client", "clientAuth", "subjectAltName=DNS:tfo-agent\n"),
        ] {
            std::fs::write(
                d.join(format!("{name}.ext")),
                format!(
                    "{san}basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"
                ),
            )
            .unwrap();
            let mut a = vec!["req"];
            a.extend(ec);
            let (key, csr, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("/CN={name}"),
            );
            a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            run(&a);
            let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        Certs { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
