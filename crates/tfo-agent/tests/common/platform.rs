//! A TelemetryFlow Platform stand-in on loopback: records every request and answers from a
//! handler the test provides. HTTP/1.1 with keep-alive and Content-Length bodies, which is
//! all the agent's client sends.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub at: Instant,
}

pub type Handler = dyn Fn(&Req) -> (u16, String) + Send + Sync;

pub struct PlatformStandIn {
    pub addr: SocketAddr,
    reqs: Arc<Mutex<Vec<Req>>>,
}

impl PlatformStandIn {
    pub fn start(handler: impl Fn(&Req) -> (u16, String) + Send + Sync + 'static) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let r = reqs.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (r, h) = (r.clone(), handler.clone());
                std::thread::spawn(move || serve(s, &r, &*h));
            }
        });
        PlatformStandIn { addr, reqs }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.reqs.lock().unwrap().clone()
    }

    pub fn wait_until(&self, what: &str, f: impl Fn(&[Req]) -> bool) -> Vec<Req> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.requests();
            if f(&r) {
                return r;
            }
            assert!(Instant::now() < end, "platform never saw {what}: {r:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(s: TcpStream, reqs: &Mutex<Vec<Req>>, h: &Handler) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut hl = String::new();
            if r.read_line(&mut hl).unwrap_or(0) == 0 {
                return;
            }
            let hl = hl.trim_end();
            if hl.is_empty() {
                break;
            }
            if let Some((k, v)) = hl.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let req = Req {
            method,
            path,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: Instant::now(),
        };
        let (status, resp) = h(&req);
        reqs.lock().unwrap().push(req);
        let out = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{resp}",
            resp.len()
        );
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
