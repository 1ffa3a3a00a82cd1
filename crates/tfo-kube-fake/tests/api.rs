//! The fake over the wire, with a minimal blocking HTTP/1.1 client (so keep-alive and
//! chunked framing are checked byte for byte, not through another library's tolerance).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tfo_kube_fake::{FakeApi, FakeConfig, objects};

struct Conn {
    r: BufReader<TcpStream>,
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn open(api: &FakeApi) -> Conn {
        let s = TcpStream::connect(api.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Conn {
            r: BufReader::new(s),
        }
    }

    fn send(&mut self, method: &str, path: &str, body: Option<&Value>, ctype: &str) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t\r\nAccept: application/json\r\n\
             Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.r.get_mut().write_all(req.as_bytes()).unwrap();
    }

    fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        (status, headers)
    }

    /// One chunk of a chunked body; None at the last (empty) chunk.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let mut size = String::new();
        self.r.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut data = vec![0; n + 2];
        self.r.read_exact(&mut data).ok()?;
        data.truncate(n);
        if n == 0 { None } else { Some(data) }
    }

    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.call_ct(method, path, body, "application/json")
    }

    fn call_ct(&mut self, method: &str, path: &str, body: Option<&Value>, ctype: &str) -> Resp {
        self.send(method, path, body, ctype);
        let (status, headers) = self.head();
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let body = match len {
            Some(n) => {
                let mut b = vec![0; n];
                self.r.read_exact(&mut b).unwrap();
                b
            }
            None => {
                let mut b = Vec::new();
                while let Some(c) = self.chunk() {
                    b.extend(c);
                }
                b
            }
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Starts a watch; read its events with `next_event`.
    fn watch(mut self, path: &str) -> Watch {
        self.send("GET", path, None, "application/json");
        let (status, _) = self.head();
        assert_eq!(status, 200, "watch {path}");
        Watch {
            c: self,
            buf: Vec::new(),
            ended: false,
        }
    }
}

struct Watch {
    c: Conn,
    buf: Vec<u8>,
    ended: bool,
}

impl Watch {
    /// The next event line, or None when the stream ended.
    fn next_event(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(
                    serde_json::from_slice(&line)
                        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&line)})),
                );
            }
            if self.ended {
                return None;
            }
            match self.c.chunk() {
                Some(c) => self.buf.extend(c),
                None => self.ended = true,
            }
        }
    }

    /// The next event that is not a bookmark.
    fn next_change(&mut self) -> Option<Value> {
        loop {
            let e = self.next_event()?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn list_pages_and_field_selectors() {
    let api = FakeApi::start();
    api.load_cluster(3, 4);
    let mut c = Conn::open(&api);
    let mut all = Vec::new();
    let mut path = "/api/v1/pods?limit=5".to_string();
    let mut rvs = Vec::new();
    let mut pages = 0;
    loop {
        let r = c.call("GET", &path, None);
        assert_eq!(r.status, 200);
        let l = r.json();
        assert_eq!(l["kind"], "PodList");
        assert_eq!(l["apiVersion"], "v1");
        rvs.push(
            l["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        all.extend(names(&l));
        pages += 1;
        match l["metadata"]["continue"].as_str() {
            Some(t) => path = format!("/api/v1/pods?limit=5&continue={t}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 12);
    let mut dedup = all.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), 12, "no pod twice across pages");
    assert!(
        rvs.iter().all(|r| *r == rvs[0]),
        "pages share the first page's resourceVersion"
    );

    let l = c
        .call(
            "GET",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1",
            None,
        )
        .json();
    assert_eq!(names(&l).len(), 4);
    assert!(
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["spec"]["nodeName"] == "node-1")
    );

    let l = c
        .call(
            "GET",
            "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-2",
            None,
        )
        .json();
    assert_eq!(names(&l), vec!["node-2"]);
    assert_eq!(l["kind"], "NodeList");

    let ns_pods = c
        .call("GET", "/api/v1/namespaces/kube-system/pods", None)
        .json();
    assert_eq!(names(&ns_pods).len(), 3, "one kube-proxy per node");
    let l = c
        .call(
            "GET",
            "/api/v1/pods?fieldSelector=metadata.namespace%3Dkube-system",
            None,
        )
        .json();
    assert_eq!(names(&l).len(), 3);
    let l = c
        .call(
            "GET",
            "/api/v1/pods?labelSelector=app.kubernetes.io%2Fname%3Dkube-proxy",
            None,
        )
        .json();
    assert_eq!(names(&l).len(), 3);

    for path in [
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/replicasets",
        "/apis/apps/v1/statefulsets",
        "/apis/apps/v1/daemonsets",
        "/apis/batch/v1/jobs",
        "/apis/batch/v1/cronjobs",
        "/apis/discovery.k8s.io/v1/endpointslices",
        "/api/v1/services",
        "/api/v1/namespaces",
        "/api/v1/resourcequotas",
        "/api/v1/events",
        "/apis/apps/v1/namespaces/app-0/deployments",
    ] {
        let r = c.call("GET", path, None);
        assert_eq!(r.status, 200, "{path}");
        assert!(!names(&r.json()).is_empty(), "{path} has objects");
    }
    let r = c.call("GET", "/api/v1/widgets", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["kind"], "Status");
    let r = c.call("GET", "/api/v1/pods?fieldSelector=nonsense", None);
    assert_eq!(r.status, 400);
    assert_eq!(c.call("GET", "/version", None).json()["major"], "1");
    assert_eq!(c.call("GET", "/api", None).json()["versions"][0], "v1");
}

#[test]
fn watch_from_a_resource_version_and_bookmarks() {
    let api = FakeApi::start_with(FakeConfig {
        bookmark_interval: Duration::from_millis(150),
        ..FakeConfig::default()
    })
    .unwrap();
    let a = api.apply(objects::pod("default", "a", "n1"));
    assert!(a["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(a["metadata"]["creationTimestamp"].is_string());
    let since = rv_of(&a);
    api.apply(objects::pod("default", "b", "n1"));
    let mut a2 = a.clone();
    a2["status"]["phase"] = "Failed".into();
    let a2 = api.apply(a2);
    assert_eq!(
        a2["metadata"]["uid"], a["metadata"]["uid"],
        "uid kept on modify"
    );
    assert!(rv_of(&a2) > since);
    assert!(api.delete("Pod", "default", "b"));

    let mut w = Conn::open(&api).watch(&format!(
        "/api/v1/pods?watch=true&resourceVersion={since}&allowWatchBookmarks=true&timeoutSeconds=10"
    ));
    let e = w.next_change().unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    let e = w.next_change().unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("MODIFIED"), Some("a"))
    );
    assert_eq!(e["object"]["status"]["phase"], "Failed");
    let e = w.next_change().unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("b"))
    );
    assert_eq!(
        rv_of(&e["object"]),
        api.resource_version(),
        "DELETED at the deletion's resourceVersion"
    );

    // Live changes, then a bookmark at the current resourceVersion.
    api.apply(objects::pod("default", "c", "n2"));
    let e = w.next_change().unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("c"))
    );
    let bm = loop {
        let e = w.next_event().unwrap();
        if e["type"] == "BOOKMARK" {
            break e;
        }
    };
    assert_eq!(rv_of(&bm["object"]), api.resource_version());
    assert_eq!(bm["object"]["kind"], "Pod");
    assert_eq!(api.open_watches(), 1);

    // A watch scoped to a node: a pod moving off the node is DELETED for it.
    let start = api.resource_version();
    let mut wn = Conn::open(&api).watch(&format!(
        "/api/v1/pods?watch=1&resourceVersion={start}&fieldSelector=spec.nodeName%3Dn2&timeoutSeconds=10"
    ));
    api.apply(objects::pod("default", "d", "n1"));
    let mut c2 = api.get("Pod", "default", "c").unwrap();
    c2["spec"]["nodeName"] = "n1".into();
    api.apply(c2);
    api.apply(objects::pod("default", "e", "n2"));
    let e = wn.next_change().unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("c"))
    );
    let e = wn.next_change().unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("e"))
    );

    // No resourceVersion: the current state as ADDED, then changes; ends at timeoutSeconds.
    let mut w0 = Conn::open(&api).watch("/api/v1/nodes?watch=true&timeoutSeconds=1");
    api.apply(objects::node("n9"));
    let e = w0.next_change().unwrap();
    assert_eq!(e["type"], "ADDED");
    let t = Instant::now();
    assert!(
        w0.next_event().is_none(),
        "the watch ends after timeoutSeconds"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    drop(w);
    drop(wn);
}

#[test]
fn expired_watches_get_410_and_relist() {
    let api = FakeApi::start_with(FakeConfig {
        history_limit: 3,
        ..FakeConfig::default()
    })
    .unwrap();
    let first = api.apply(objects::pod("default", "p0", "n1"));
    let mut w = Conn::open(&api).watch(&format!(
        "/api/v1/pods?watch=true&resourceVersion={}",
        rv_of(&first)
    ));
    assert_eq!(api.open_watches(), 1);
    assert_eq!(api.expire_watches(), 1);
    let e = w.next_event().unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(w.next_event().is_none(), "closed after the error");

    // Resuming from before the expiry: 410 at once.
    let mut w = Conn::open(&api).watch(&format!(
        "/api/v1/pods?watch=true&resourceVersion={}",
        rv_of(&first)
    ));
    assert_eq!(w.next_event().unwrap()["object"]["code"], 410);
    assert!(w.next_event().is_none());

    // The relist gives a resourceVersion that can be watched from.
    let mut c = Conn::open(&api);
    let l = c.call("GET", "/api/v1/pods", None).json();
    let rv = l["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = Conn::open(&api).watch(&format!("/api/v1/pods?watch=true&resourceVersion={rv}"));
    api.apply(objects::pod("default", "p1", "n1"));
    assert_eq!(w.next_change().unwrap()["type"], "ADDED");

    // History is a window: older than the window also expires, as do continue tokens.
    let mut c = Conn::open(&api);
    let l = c.call("GET", "/api/v1/pods?limit=1", None).json();
    let token = l["metadata"]["continue"].as_str().unwrap().to_string();
    for i in 0..5 {
        api.apply(objects::pod("default", &format!("q{i}"), "n1"));
    }
    let mut w = Conn::open(&api).watch(&format!("/api/v1/pods?watch=true&resourceVersion={rv}"));
    assert_eq!(w.next_event().unwrap()["object"]["code"], 410);
    let r = c.call(
        "GET",
        &format!("/api/v1/pods?limit=1&continue={token}"),
        None,
    );
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["reason"], "Expired");
}

#[test]
fn forbidden_and_request_log() {
    let api = FakeApi::start();
    api.forbid("pods", "list");
    let mut c = Conn::open(&api);
    let r = c.call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1", None);
    assert_eq!(r.status, 403);
    let s = r.json();
    assert_eq!(s["reason"], "Forbidden");
    assert_eq!(s["code"], 403);
    assert_eq!(
        s["message"],
        "pods is forbidden: User \"system:serviceaccount:telemetryflow:tfo-agent\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
    let r = c.call(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x",
        None,
    );
    assert_eq!(r.status, 404, "only the forbidden verb");
    api.forbid("leases", "get");
    let r = c.call(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x",
        None,
    );
    assert_eq!(
        r.json()["message"],
        "leases.coordination.k8s.io \"x\" is forbidden: User \"system:serviceaccount:telemetryflow:tfo-agent\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\""
    );
    api.allow("pods", "list");
    assert_eq!(c.call("GET", "/api/v1/pods", None).status, 200);
    drop(Conn::open(&api).watch("/api/v1/nodes?watch=1&timeoutSeconds=1"));

    let log = api.requests();
    let verbs: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|r| (r.verb.as_str(), r.resource.as_str(), r.status))
        .collect();
    assert_eq!(
        verbs,
        vec![
            ("list", "pods", 403),
            ("get", "leases", 404),
            ("get", "leases", 403),
            ("list", "pods", 200),
            ("watch", "nodes", 200)
        ]
    );
    assert_eq!(log[1].group, "coordination.k8s.io");
    assert_eq!(log[1].namespace, "kube-system");
    assert_eq!(log[1].name, "x");
    assert_eq!(log[0].query, "fieldSelector=spec.nodeName%3Dn1");
}

#[test]
fn lease_create_get_update_conflict() {
    let api = FakeApi::start();
    let mut c = Conn::open(&api);
    let base = "/apis/coordination.k8s.io/v1/namespaces/telemetryflow/leases";
    let r = c.call("GET", &format!("{base}/tfo-agent-cluster"), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["reason"], "NotFound");
    assert_eq!(
        r.json()["message"],
        "leases.coordination.k8s.io \"tfo-agent-cluster\" not found"
    );

    let mut lease = objects::lease("telemetryflow", "tfo-agent-cluster", "agent-a", 15);
    lease["metadata"]["annotations"] = json!({"telemetryflow.io/events-watermark": "42"});
    let r = c.call("POST", base, Some(&lease));
    assert_eq!(r.status, 201);
    let created = r.json();
    let rv1 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.call("POST", base, Some(&lease)).json()["reason"],
        "AlreadyExists"
    );

    let got = c
        .call("GET", &format!("{base}/tfo-agent-cluster"), None)
        .json();
    assert_eq!(got["spec"]["holderIdentity"], "agent-a");
    assert_eq!(
        got["metadata"]["annotations"]["telemetryflow.io/events-watermark"],
        "42"
    );

    // Agent b read the lease at rv1; agent a renews first; b's takeover conflicts.
    let mut renew = got.clone();
    renew["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z".into();
    let r = c.call("PUT", &format!("{base}/tfo-agent-cluster"), Some(&renew));
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["metadata"]["resourceVersion"], rv1.as_str());
    let mut takeover = got.clone();
    takeover["spec"]["holderIdentity"] = "agent-b".into();
    let r = c.call("PUT", &format!("{base}/tfo-agent-cluster"), Some(&takeover));
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "Conflict");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );

    let stored = api.lease("telemetryflow", "tfo-agent-cluster").unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], "agent-a");
    assert_eq!(stored["spec"]["renewTime"], "2030-01-01T00:00:00.000000Z");
    assert_eq!(
        stored["metadata"]["annotations"]["telemetryflow.io/events-watermark"],
        "42"
    );
    assert_eq!(stored["metadata"]["uid"], created["metadata"]["uid"]);

    let r = c.call(
        "PUT",
        &format!("{base}/missing"),
        Some(&json!({"metadata": {"name": "missing"}, "spec": {}})),
    );
    assert_eq!(r.status, 404);

    // Merge patch, with and without a stale resourceVersion.
    let r = c.call_ct(
        "PATCH",
        &format!("{base}/tfo-agent-cluster"),
        Some(&json!({"metadata": {"annotations": {"telemetryflow.io/events-watermark": "43"}}})),
        "application/merge-patch+json",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["spec"]["holderIdentity"], "agent-a");
    assert_eq!(
        r.json()["metadata"]["annotations"]["telemetryflow.io/events-watermark"],
        "43"
    );
    let r = c.call_ct(
        "PATCH",
        &format!("{base}/tfo-agent-cluster"),
        Some(&json!({"metadata": {"resourceVersion": rv1}, "spec": {"holderIdentity": "agent-b"}})),
        "application/merge-patch+json",
    );
    assert_eq!(r.status, 409);

    let verbs: Vec<String> = api.requests().iter().map(|r| r.verb.clone()).collect();
    assert_eq!(
        verbs,
        [
            "get", "create", "create", "get", "update", "update", "update", "patch", "patch"
        ]
    );
}

#[test]
fn malformed_and_garbage_reach_node_scoped_watches() {
    let api = FakeApi::start();
    api.apply(objects::pod("default", "a", "n1"));
    let rv = api.resource_version();
    let mut w = Conn::open(&api).watch(&format!(
        "/api/v1/pods?watch=1&resourceVersion={rv}&fieldSelector=spec.nodeName%3Dn1"
    ));
    api.inject_malformed("pods");
    let e = w.next_change().unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["spec"], 5);
    api.inject_watch_line("Pod", "{not json");
    assert_eq!(w.next_change().unwrap()["raw"], "{not json\n");
    api.apply(objects::pod("default", "b", "n1"));
    assert_eq!(w.next_change().unwrap()["object"]["metadata"]["name"], "b");
    // A relist is clean: the malformed object was never stored.
    let l = Conn::open(&api).call("GET", "/api/v1/pods", None).json();
    assert_eq!(names(&l), vec!["a", "b"]);
}

#[test]
fn keep_alive_serves_several_requests_per_connection() {
    let api = FakeApi::start();
    api.load_cluster(2, 2);
    let mut c = Conn::open(&api);
    let r1 = c.call("GET", "/api/v1/nodes", None);
    assert_eq!(r1.status, 200);
    assert_ne!(r1.header("connection"), Some("close"));
    let r2 = c.call("GET", "/api/v1/pods?limit=1", None);
    assert_eq!(r2.status, 200);
    let r3 = c.call(
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        Some(&objects::lease("default", "l", "a", 15)),
    );
    assert_eq!(r3.status, 201);
    // A watch after plain requests on the same connection.
    let mut w = c.watch("/api/v1/namespaces?watch=1&timeoutSeconds=1");
    assert_eq!(w.next_change().unwrap()["type"], "ADDED");
    while w.next_event().is_some() {}
    // And a request after the watch ended, still on the same connection.
    let mut c = w.c;
    assert_eq!(
        c.call("GET", "/api/v1/nodes/node-1", None).json()["metadata"]["name"],
        "node-1"
    );
    assert_eq!(api.requests().len(), 5);
}

#[test]
fn unavailable_and_refused() {
    let api = FakeApi::start();
    let mut c = Conn::open(&api);
    assert_eq!(c.call("GET", "/api/v1/pods", None).status, 200);
    let mut w = Conn::open(&api).watch("/api/v1/pods?watch=1");
    api.set_unavailable(true);
    assert!(w.next_event().is_none(), "open watches are closed");
    let r = c.call("GET", "/api/v1/pods", None);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "ServiceUnavailable");
    api.set_unavailable(false);
    assert_eq!(c.call("GET", "/api/v1/pods", None).status, 200);

    api.set_refuse_connections(true);
    let r = c.call("GET", "/api/v1/pods", None);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    let mut s = TcpStream::connect(api.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 16];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "new connections are dropped"
    );
    api.set_refuse_connections(false);
    assert_eq!(
        Conn::open(&api).call("GET", "/api/v1/pods", None).status,
        200
    );
}

#[test]
fn admin_endpoints() {
    let api = FakeApi::start();
    api.load_cluster(2, 3);
    let mut c = Conn::open(&api);
    c.call("GET", "/api/v1/pods", None);
    let stats = c.call("GET", "/fake/stats", None).json();
    assert_eq!(stats["objects"]["pods"], 6);
    assert_eq!(stats["objects"]["nodes"], 2);
    let w = Conn::open(&api).watch("/api/v1/pods?watch=1&resourceVersion=1");
    let _ = w;
    let r = c.call("POST", "/fake/expire", None).json();
    assert_eq!(r["expired"], 1);
    let lines = String::from_utf8(c.call("GET", "/fake/requests", None).body).unwrap();
    let reqs: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["verb"], "list");
    assert_eq!(reqs[1]["verb"], "watch");
}

#[test]
fn a_client_going_away_closes_its_watch() {
    let api = FakeApi::start();
    let w = Conn::open(&api).watch("/api/v1/pods?watch=1&resourceVersion=1");
    let w2 =
        Conn::open(&api).watch("/api/v1/nodes?watch=1&resourceVersion=1&allowWatchBookmarks=true");
    assert_eq!(api.open_watches(), 2);
    assert_eq!(api.open_watches_of("pods"), 1);
    drop(w);
    drop(w2);
    let t = Instant::now();
    while api.open_watches() > 0 && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(api.open_watches(), 0, "noticed within {:?}", t.elapsed());
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "without waiting for a write: {:?}",
        t.elapsed()
    );
}
