//! The HTTP side: hyper's HTTP/1.1 server (keep-alive, chunked watch bodies), routing of
//! Kubernetes API paths to verbs, and the `/fake/*` admin endpoints.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::resource::{self, RESOURCES, Selector};
use crate::state::{
    ApiError, Request, Shared, State, WatchSub, bookmark_line, error_line, event_line,
};

/// The watch timeout when the client gives none (the API server picks 30–60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// Request bodies larger than this are refused (objects are a few KiB).
const MAX_BODY: usize = 4 << 20;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.lock().refuse {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// A response body: a whole buffer, or a watch stream.
pub enum RespBody {
    Full(Option<Bytes>),
    Watch(Box<WatchBody>),
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Watch(w) => w.poll(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, RespBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RespBody::Full(None) => SizeHint::with_exact(0),
            RespBody::Watch(_) => SizeHint::default(),
        }
    }
}

/// An open watch: lines the state pushes, a bookmark every period, the end at the
/// timeout. Dropping it (client gone, connection closed) unregisters it.
pub struct WatchBody {
    shared: Arc<Shared>,
    id: u64,
    res: usize,
    rx: mpsc::UnboundedReceiver<Bytes>,
    deadline: Pin<Box<Sleep>>,
    bookmark: Option<(Pin<Box<Sleep>>, Duration)>,
    done: bool,
}

impl WatchBody {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(line)) => return Poll::Ready(Some(line)),
            Poll::Ready(None) => {
                self.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(None);
        }
        if let Some((sleep, period)) = &mut self.bookmark
            && sleep.as_mut().poll(cx).is_ready()
        {
            sleep.as_mut().reset(Instant::now() + *period);
            let _ = sleep.as_mut().poll(cx);
            // Under the lock changes are queued and the counter bumped together: a change
            // queued meanwhile goes first, so a bookmark never runs ahead of an event.
            let st = self.shared.lock();
            let line = match self.rx.try_recv() {
                Ok(line) => line,
                Err(_) => bookmark_line(self.res, st.rv, false),
            };
            return Poll::Ready(Some(line));
        }
        Poll::Pending
    }
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        let id = self.id;
        self.shared.lock().watches.retain(|w| w.id != id);
    }
}

type Resp = Response<RespBody>;

fn respond(code: u16, body: Bytes) -> Resp {
    let mut r = Response::new(RespBody::Full(Some(body)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn respond_json(code: u16, v: &Value) -> Resp {
    respond(code, Bytes::from(v.to_string()))
}

fn respond_err(e: &ApiError) -> Resp {
    respond_json(e.code, &e.status_json())
}

/// `a=b&c=d` with percent and `+` decoding.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// A parsed resource path.
struct Target {
    res: usize,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    /// The legacy `/api/v1/watch/...` form.
    legacy_watch: bool,
}

enum Route {
    Resource(Target),
    Discovery(Value),
    NotFound,
}

fn route(path: &str, host: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, mut rest) = match segs.as_slice() {
        ["version"] => {
            return Route::Discovery(json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0-tfo-kube-fake",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
                "platform": "linux/amd64",
            }));
        }
        ["api"] => {
            return Route::Discovery(json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }));
        }
        ["apis"] => return Route::Discovery(group_list()),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::NotFound,
    };
    if rest.is_empty() {
        return match resource_list(group, version) {
            Some(v) => Route::Discovery(v),
            None => Route::NotFound,
        };
    }
    let mut legacy_watch = false;
    if rest[0] == "watch" {
        legacy_watch = true;
        rest = &rest[1..];
    }
    let s = |x: &&str| x.to_string();
    let t = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if tail.len() <= 2 && resource::by_path(group, version, plural).is_some() =>
        {
            let res = resource::by_path(group, version, plural).unwrap_or(0);
            if !RESOURCES[res].namespaced {
                return Route::NotFound;
            }
            Target {
                res,
                ns: Some(ns.to_string()),
                name: tail.first().map(s),
                sub: tail.get(1).map(s),
                legacy_watch,
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            let Some(res) = resource::by_path(group, version, plural) else {
                return Route::NotFound;
            };
            if RESOURCES[res].namespaced && !tail.is_empty() {
                return Route::NotFound;
            }
            Target {
                res,
                ns: None,
                name: tail.first().map(s),
                sub: tail.get(1).map(s),
                legacy_watch,
            }
        }
        _ => return Route::NotFound,
    };
    if t.sub.as_deref().is_some_and(|s| s != "status") {
        return Route::NotFound;
    }
    Route::Resource(t)
}

fn group_list() -> Value {
    let mut groups: Vec<&str> = RESOURCES
        .iter()
        .map(|r| r.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let rs: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({
                "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    if rs.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": rs}),
    )
}

async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        match Limited::collect(req.into_body()).await {
            Ok(b) => b,
            Err(e) => return respond_err(&e),
        }
    } else {
        Bytes::new()
    };
    if let Some(admin) = path.strip_prefix("/fake/") {
        return handle_admin(&shared, &method, admin, &query);
    }
    let params = Params(parse_query(&query));
    let mut rec = Request {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        verb: String::new(),
        group: String::new(),
        resource: String::new(),
        namespace: String::new(),
        name: String::new(),
        status: 0,
    };
    let route = route(&path, &host);
    if let Route::Resource(t) = &route {
        let def = &RESOURCES[t.res];
        rec.group = def.group.to_string();
        rec.resource = match &t.sub {
            Some(sub) => format!("{}/{sub}", def.plural),
            None => def.plural.to_string(),
        };
        rec.namespace = t.ns.clone().unwrap_or_default();
        rec.name = t.name.clone().unwrap_or_default();
        rec.verb = verb(&method, t, &params).to_string();
    }
    let resp = dispatch(&shared, &method, route, &params, &body, &content_type, &rec);
    rec.status = resp.status().as_u16();
    shared.lock().requests.push(rec);
    resp
}

struct Limited;

impl Limited {
    async fn collect(body: Incoming) -> Result<Bytes, ApiError> {
        let limited = http_body_util::Limited::new(body, MAX_BODY);
        match limited.collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) => Err(ApiError::new(
                400,
                "BadRequest",
                format!("reading request body: {e}"),
            )),
        }
    }
}

fn verb(method: &Method, t: &Target, params: &Params) -> &'static str {
    let named = t.name.is_some();
    match *method {
        Method::GET if named => "get",
        Method::GET if t.legacy_watch || params.flag("watch") => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "",
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    route: Route,
    params: &Params,
    body: &Bytes,
    content_type: &str,
    rec: &Request,
) -> Resp {
    {
        let st = shared.lock();
        if st.refuse {
            // The connection is closed after this answer, as if the server went away.
            let mut r = respond_err(&unavailable());
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        if st.unavailable {
            return respond_err(&unavailable());
        }
    }
    let t = match route {
        Route::Discovery(v) => return respond_json(200, &v),
        Route::NotFound => {
            return respond_err(&ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        Route::Resource(t) => t,
    };
    let def = &RESOURCES[t.res];
    let mut st = shared.lock();
    if st.is_forbidden(&rec.resource, &rec.verb) {
        return respond_err(&forbidden(&st.user, rec));
    }
    match rec.verb.as_str() {
        "get" => {
            let name = t.name.as_deref().unwrap_or("");
            match st.get(t.res, t.ns.as_deref().unwrap_or(""), name) {
                Some(s) => respond(200, s.json.clone()),
                None => respond_err(&ApiError::not_found(def, name)),
            }
        }
        "list" => match list(&st, &t, params) {
            Ok(b) => respond(200, b),
            Err(e) => respond_err(&e),
        },
        "watch" => watch(shared, &mut st, &t, params),
        "create" => {
            let obj = match parse_body(body) {
                Ok(o) => o,
                Err(e) => return respond_err(&e),
            };
            match create(&mut st, &t, obj) {
                Ok(v) => respond_json(201, &v),
                Err(e) => respond_err(&e),
            }
        }
        "update" => {
            let obj = match parse_body(body) {
                Ok(o) => o,
                Err(e) => return respond_err(&e),
            };
            match update(&mut st, &t, obj) {
                Ok(v) => respond_json(200, &v),
                Err(e) => respond_err(&e),
            }
        }
        "patch" => {
            let patch = match parse_body(body) {
                Ok(o) => o,
                Err(e) => return respond_err(&e),
            };
            match patch_obj(&mut st, &t, patch, content_type) {
                Ok((code, v)) => respond_json(code, &v),
                Err(e) => respond_err(&e),
            }
        }
        "delete" => {
            let name = t.name.as_deref().unwrap_or("");
            match st.delete(t.res, t.ns.as_deref().unwrap_or(""), name) {
                Some(v) => respond_json(200, &v),
                None => respond_err(&ApiError::not_found(def, name)),
            }
        }
        _ => respond_err(&ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )),
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
    )
}

/// The 403 the API server answers, word for word.
pub fn forbidden(user: &str, rec: &Request) -> ApiError {
    let subject = if rec.name.is_empty() {
        rec.resource.split('/').next().unwrap_or("").to_string()
    } else {
        let def = resource::by_path(
            &rec.group,
            "v1",
            rec.resource.split('/').next().unwrap_or(""),
        )
        .map(|r| RESOURCES[r].qualified())
        .unwrap_or_else(|| rec.resource.clone());
        format!("{def} \"{}\"", rec.name)
    };
    let scope = if rec.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", rec.namespace)
    };
    let message = format!(
        "{subject} is forbidden: User \"{user}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        rec.verb, rec.resource, rec.group
    );
    let mut details =
        json!({"group": rec.group, "kind": rec.resource.split('/').next().unwrap_or("")});
    if !rec.name.is_empty() {
        details["name"] = rec.name.clone().into();
    }
    ApiError::new(403, "Forbidden", message).with_details(details)
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(body)
        .map_err(|e| {
            ApiError::new(
                400,
                "BadRequest",
                format!("the body of the request was in an unknown format: {e}"),
            )
        })
        .and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err(ApiError::new(
                    400,
                    "BadRequest",
                    "the body of the request is not a JSON object",
                ))
            }
        })
}

fn meta_str<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn set_meta(v: &mut Value, k: &str, val: &str) {
    if let Some(o) = v.as_object_mut() {
        let m = o.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = m.as_object_mut() {
            m.insert(k.into(), val.into());
        }
    }
}

/// The namespace the object goes to: the path's, which a different one in the body may
/// not contradict.
fn check_ns(t: &Target, obj: &mut Value) -> Result<String, ApiError> {
    let def = &RESOURCES[t.res];
    if !def.namespaced {
        return Ok(String::new());
    }
    let body_ns = meta_str(obj, "namespace").to_string();
    let ns = match (&t.ns, body_ns.as_str()) {
        (Some(p), "") => p.clone(),
        (Some(p), b) if p != b => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(p), _) => p.clone(),
        (None, _) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    set_meta(obj, "namespace", &ns);
    Ok(ns)
}

fn create(st: &mut State, t: &Target, mut obj: Value) -> Result<Value, ApiError> {
    let def = &RESOURCES[t.res];
    if t.name.is_some() {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "POST to a named resource",
        ));
    }
    let ns = check_ns(t, &mut obj)?;
    if !meta_str(&obj, "resourceVersion").is_empty() {
        return Err(ApiError::new(
            500,
            "InternalError",
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let name = meta_str(&obj, "name").to_string();
    if !name.is_empty() && st.get(t.res, &ns, &name).is_some() {
        return Err(ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", def.qualified()),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural})));
    }
    st.apply(obj, t.res)
}

fn update(st: &mut State, t: &Target, mut obj: Value) -> Result<Value, ApiError> {
    let def = &RESOURCES[t.res];
    let name = t.name.clone().unwrap_or_default();
    let ns = check_ns(t, &mut obj)?;
    match meta_str(&obj, "name") {
        "" => set_meta(&mut obj, "name", &name),
        n if n != name => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "the name of the object does not match the name on the URL",
            ));
        }
        _ => {}
    }
    let Some(cur) = st.get(t.res, &ns, &name) else {
        return Err(ApiError::not_found(def, &name));
    };
    check_rv(def, &name, meta_str(&obj, "resourceVersion"), cur.rv)?;
    if t.sub.is_some() {
        // A status update keeps the stored spec and metadata.
        let mut stored = cur.value();
        stored["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
        obj = stored;
    }
    st.apply(obj, t.res)
}

fn check_rv(
    def: &resource::ResourceDef,
    name: &str,
    given: &str,
    stored: u64,
) -> Result<(), ApiError> {
    if !given.is_empty() && given != stored.to_string() {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                def.qualified()
            ),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural})));
    }
    Ok(())
}

/// JSON merge patch (RFC 7386). Strategic merge and server-side apply bodies are merged
/// the same way, which is what they amount to for the maps a Lease or status carries.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn patch_obj(
    st: &mut State,
    t: &Target,
    patch: Value,
    content_type: &str,
) -> Result<(u16, Value), ApiError> {
    let def = &RESOURCES[t.res];
    if content_type.starts_with("application/json-patch+json") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the fake does not support JSON patch",
        ));
    }
    let name = t.name.clone().unwrap_or_default();
    let ns = t.ns.clone().unwrap_or_default();
    let Some(cur) = st.get(t.res, &ns, &name) else {
        if content_type.starts_with("application/apply-patch") {
            let mut obj = patch;
            set_meta(&mut obj, "name", &name);
            if def.namespaced {
                set_meta(&mut obj, "namespace", &ns);
            }
            return st.apply(obj, t.res).map(|v| (201, v));
        }
        return Err(ApiError::not_found(def, &name));
    };
    check_rv(def, &name, meta_str(&patch, "resourceVersion"), cur.rv)?;
    let mut obj = cur.value();
    merge(&mut obj, &patch);
    set_meta(&mut obj, "name", &name);
    st.apply(obj, t.res).map(|v| (200, v))
}

fn selectors(params: &Params) -> Result<(Selector, Selector), ApiError> {
    let bad = |e: String| ApiError::new(400, "BadRequest", e);
    let fields = Selector::parse(params.get("fieldSelector").unwrap_or(""), false).map_err(bad)?;
    let labels = Selector::parse(params.get("labelSelector").unwrap_or(""), true).map_err(bad)?;
    Ok((fields, labels))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// `<rv>-<hex ns>-<hex name>`: the list's resourceVersion (every page reports the
/// first's, as the API server's consistent pages do) and the last key served.
fn parse_continue(token: &str) -> Option<(u64, (String, String))> {
    let mut it = token.split('-');
    let rv = it.next()?.parse().ok()?;
    let ns = unhex(it.next()?)?;
    let name = unhex(it.next()?)?;
    Some((rv, (ns, name)))
}

fn list(st: &State, t: &Target, params: &Params) -> Result<Bytes, ApiError> {
    let def = &RESOURCES[t.res];
    let (fields, labels) = selectors(params)?;
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let (list_rv, after) = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let Some((rv, key)) = parse_continue(c) else {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    "continue key is not valid",
                ));
            };
            if rv < st.floor {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".to_string(),
                ));
            }
            (rv, Some(key))
        }
        None => (st.rv, None),
    };
    let (items, more) = st.list(
        t.res,
        t.ns.as_deref(),
        &fields,
        &labels,
        after.as_ref(),
        limit,
    );
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if more && let Some(last) = items.last() {
        meta["continue"] = format!("{list_rv}-{}-{}", hex(&last.ns), hex(&last.name)).into();
    }
    let size: usize = items.iter().map(|s| s.json.len() + 1).sum();
    let mut b = BytesMut::with_capacity(size + 256);
    b.put_slice(
        format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{meta},\"items\":[",
            def.kind,
            def.api_version()
        )
        .as_bytes(),
    );
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            b.put_u8(b',');
        }
        b.put_slice(&s.json);
    }
    b.put_slice(b"]}");
    Ok(b.freeze())
}

fn watch(shared: &Arc<Shared>, st: &mut State, t: &Target, params: &Params) -> Resp {
    let (fields, labels) = match selectors(params) {
        Ok(s) => s,
        Err(e) => return respond_err(&e),
    };
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let bookmarks = params.flag("allowWatchBookmarks");
    let initial = params.flag("sendInitialEvents");
    let rv_param = params.get("resourceVersion").unwrap_or("");
    let (tx, rx) = mpsc::unbounded_channel();
    let id = st.next_watch_id;
    st.next_watch_id += 1;
    let sub = WatchSub {
        id,
        res: t.res,
        ns: t.ns.clone(),
        fields,
        labels,
        tx,
    };
    let mut register = true;
    if initial || rv_param.is_empty() || rv_param == "0" {
        // No resourceVersion (or "0"): the current state as synthetic ADDED events first.
        let (items, _) = st.list(t.res, t.ns.as_deref(), &sub.fields, &sub.labels, None, 0);
        for s in items {
            let _ = sub.tx.send(event_line("ADDED", &s.json));
        }
        if initial && bookmarks {
            let _ = sub.tx.send(bookmark_line(t.res, st.rv, true));
        }
    } else {
        let Ok(from) = rv_param.parse::<u64>() else {
            return respond_err(&ApiError::new(
                400,
                "BadRequest",
                format!("invalid resource version: {rv_param}"),
            ));
        };
        if from < st.floor {
            let err = ApiError::expired(format!("too old resource version: {from} ({})", st.floor));
            let _ = sub.tx.send(error_line(&err));
            register = false;
        } else {
            for ch in st.history.iter().filter(|c| c.rv > from) {
                if let Some(line) = State::line_for(&sub, ch) {
                    let _ = sub.tx.send(line);
                }
            }
        }
    }
    let interval = st.bookmark_interval;
    if register {
        st.watches.push(sub);
    } else {
        drop(sub);
    }
    let body = WatchBody {
        shared: shared.clone(),
        id,
        res: t.res,
        rx,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        bookmark: bookmarks.then(|| (Box::pin(tokio::time::sleep(interval)), interval)),
        done: false,
    };
    let mut r = Response::new(RespBody::Watch(Box::new(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn handle_admin(shared: &Arc<Shared>, method: &Method, path: &str, query: &str) -> Resp {
    let params = Params(parse_query(query));
    let on = || !matches!(params.get("on"), Some("false" | "0"));
    let mut st = shared.lock();
    match (method, path) {
        (&Method::POST, "expire") => {
            let n = st.expire_watches();
            respond_json(
                200,
                &json!({"expired": n, "resourceVersion": st.rv.to_string()}),
            )
        }
        (&Method::GET, "requests") => {
            let mut b = BytesMut::new();
            for r in &st.requests {
                b.put_slice(r.to_json().to_string().as_bytes());
                b.put_u8(b'\n');
            }
            let mut r = respond(200, b.freeze());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            r
        }
        (&Method::GET, "stats") => respond_json(200, &stats(&st)),
        (&Method::POST, "unavailable") => {
            st.unavailable = on();
            if st.unavailable {
                st.close_watches();
            }
            respond_json(200, &json!({"unavailable": st.unavailable}))
        }
        _ => respond_err(&ApiError::new(404, "NotFound", "unknown admin endpoint")),
    }
}

pub fn stats(st: &State) -> Value {
    let mut objects = serde_json::Map::new();
    for (i, r) in RESOURCES.iter().enumerate() {
        if st.count(i) > 0 {
            objects.insert(r.qualified(), st.count(i).into());
        }
    }
    json!({
        "resourceVersion": st.rv.to_string(),
        "objects": objects,
        "openWatches": st.watches.len(),
        "requests": st.requests.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("fieldSelector=spec.nodeName%3Dnode-1&watch=1&x=a+b&bad=%zz&end=%4");
        assert_eq!(
            q[0],
            ("fieldSelector".into(), "spec.nodeName=node-1".into())
        );
        assert_eq!(q[1], ("watch".into(), "1".into()));
        assert_eq!(q[2].1, "a b");
        assert_eq!(q[3].1, "%zz");
        assert_eq!(q[4].1, "%4");
    }

    #[test]
    fn continue_tokens_round_trip() {
        let tok = format!("42-{}-{}", hex("kube-system"), hex("pod-a"));
        assert_eq!(
            parse_continue(&tok),
            Some((42, ("kube-system".into(), "pod-a".into())))
        );
        assert_eq!(parse_continue("x"), None);
        assert_eq!(unhex("6"), None);
    }
}
