//! # nbtrail-gateway
//!
//! A reverse proxy in front of a Jupyter server that writes every execution request and every output a
//! user was shown to the capture log (`nbtrail-capture`), outside the user's control, and refuses to
//! forward what it could not log. This crate owns the network side; the log format is
//! `nbtrail-capture`'s.
//!
//! ## What passes through
//! * **Other websockets** (terminals, event bus, collaboration) are refused with 501: they would be an
//!   unrecorded way to run code.
//! * **HTTP** (REST API, contents, static files): forwarded transparently. Each request is logged
//!   (method, path, query with tokens redacted, user, peer) *before* it is forwarded and its status after;
//!   answers of the sessions API (`/api/sessions`) also teach the gateway which notebook path each kernel
//!   belongs to.
//! * **Kernel websockets** (`…/api/kernels/<id>/channels`): the gateway connects upstream with the
//!   subprotocol the browser offered, answers the browser with the one upstream chose, then pumps frames
//!   both ways. Every frame — JSON text, legacy binary or `v1.kernel.websocket.jupyter.org` — is decoded
//!   ([`frames`]), recorded ([`record`]: links, identity, bounded content, frame hash) and forwarded byte
//!   for byte only once its record is durable ([`logger`]). Frames that do not decode are recorded as
//!   bytes and still forwarded: the gateway is a recorder, not a filter.
//!
//! ## Fail closed
//! A browser→kernel message whose record cannot be written is not forwarded; the browser gets an
//! `error` output and an error reply naming the reason, so the user sees why the cell did not run. A
//! kernel→browser message that cannot be recorded is withheld (the user is told once per request). An
//! HTTP request that cannot be recorded is answered 503.
//!
//! ## Identity
//! Fixed by whoever started the gateway (the JupyterHub integration: one gateway per user server), or
//! taken from the authenticated request ([`identity`]): a header from a trusted proxy that also presents
//! the shared secret, or the gateway's own token map — never from the `username` a client writes into
//! message headers.

#![warn(missing_docs)]

pub mod frames;
pub mod identity;
pub mod logger;
pub mod quota;
pub mod record;
pub mod routes;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use nbtrail_capture::RecordType;
use nbtrail_capture::writer::Entry;
use record::{Bounds, ConnInfo, Direction};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

pub use identity::Identity;
pub use logger::Logger;

type Body = BoxBody<Bytes, hyper::Error>;

/// Largest sessions-API answer the gateway reads to learn notebook paths.
const MAX_SESSIONS_BODY: usize = 16 * 1024 * 1024;
/// Frames queued per direction between "record submitted" and "forwarded".
const PIPELINE_DEPTH: usize = 256;

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Upstream Jupyter server, `http://host:port` (a path, if any, is ignored: paths pass through).
    pub upstream: hyper::Uri,
    /// Identity source.
    pub identity: Identity,
    /// Content bounds.
    pub bounds: Bounds,
    /// Bytes recorded per user per hour (0: no quota).
    pub quota_bytes_per_hour: u64,
}

struct Shared {
    cfg: Config,
    logger: Logger,
    client: Client<HttpConnector, Body>,
    /// kernel id → notebook path, from the sessions API.
    paths: Mutex<HashMap<String, String>>,
    /// session id → kernel id, from the sessions API (a session's deletion shuts its kernel down).
    session_kernels: Mutex<HashMap<String, String>>,
    conns: AtomicU64,
    requests: AtomicU64,
    quota: quota::Quota,
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves until `shutdown` resolves, then closes the log (final checkpoint and `segment_end`).
pub async fn serve(
    listener: TcpListener,
    cfg: Config,
    logger: Logger,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        logger: logger.clone(),
        client: Client::builder(TokioExecutor::new()).build_http(),
        paths: Mutex::new(HashMap::new()),
        session_kernels: Mutex::new(HashMap::new()),
        conns: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        quota: quota::Quota::new(cfg.quota_bytes_per_hour),
        cfg,
    });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(x) => x,
                    Err(e) => { tracing::warn!("accept: {e}"); continue; }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(shared, req, remote).await) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await
                    {
                        tracing::debug!("connection from {remote}: {e}");
                    }
                });
            }
        }
    }
    logger.close().await;
    Ok(())
}

/// The kernel id of a kernel-channels path (`…/api/kernels/<id>/channels`).
pub fn kernel_channels_id(path: &str) -> Option<&str> {
    let i = path.find("/api/kernels/")?;
    let rest = &path[i + "/api/kernels/".len()..];
    let id = rest.strip_suffix("/channels")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// `("restart" | "shutdown", kernel id)` when a request restarts or shuts down a kernel
/// ([`routes::lifecycle`]; a deleted session's kernel is known only if the gateway has seen it).
fn lifecycle(shared: &Shared, method: &str, path: &str) -> Option<(&'static str, String)> {
    match routes::lifecycle(method, path)? {
        routes::Lifecycle::Restart(id) => Some(("restart", id.to_string())),
        routes::Lifecycle::ShutdownKernel(id) => Some(("shutdown", id.to_string())),
        routes::Lifecycle::ShutdownSession(id) => shared
            .session_kernels
            .lock()
            .expect("sessions lock")
            .get(id)
            .map(|k| ("shutdown", k.clone())),
    }
}

fn is_sessions_api(path: &str) -> bool {
    path.ends_with("/api/sessions") || path.contains("/api/sessions/")
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let identity = shared
        .cfg
        .identity
        .user(req.headers(), query.as_deref(), remote.ip());
    let id = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let mut fields = json!({
        "id": id,
        "remote": remote.to_string(),
        "method": req.method().as_str(),
        "path": path,
        "query": query.as_deref().map(identity::redact_query),
        "user": identity.as_ref().ok().cloned().flatten(),
        "auth": shared.cfg.identity.mode(),
        "user_agent": req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()),
    });
    let route = routes::decide(req.method().as_str(), &path);
    // A kernel restart or shutdown ends the kernel's capture session (replay starts a new one).
    if let Some((what, kernel)) = lifecycle(&shared, req.method().as_str(), &path) {
        fields["lifecycle"] = json!(what);
        fields["kernel_id"] = json!(kernel);
    }
    let refusal = match (&identity, origin_mismatch(req.headers()), route) {
        (Err(reason), _, _) => Some((StatusCode::UNAUTHORIZED, reason.clone())),
        (_, Some(reason), _) => Some((StatusCode::FORBIDDEN, reason)),
        (_, _, Err(reason)) => Some((StatusCode::FORBIDDEN, reason)),
        _ => None,
    };
    if let Some((status, reason)) = &refusal {
        fields["refused"] = json!(reason);
        fields["status"] = json!(status.as_u16());
    }
    if let Err(e) = shared
        .logger
        .write(vec![Entry::new(RecordType::Http, fields)])
        .await
    {
        return unlogged("refused", &e);
    }
    if let Some((status, reason)) = refusal {
        return plain(status, format!("nbtrail-gateway: {reason}\n"));
    }
    let user = identity.ok().flatten();
    if let Some(kernel_id) = kernel_channels_id(&path).map(str::to_string)
        && is_websocket_upgrade(req.headers())
    {
        return websocket(shared, req, remote, user, kernel_id, id).await;
    }
    if is_websocket_upgrade(req.headers()) {
        // Terminals, the event bus, collaboration: ways to run code or move data the gateway cannot
        // decode, so they are refused rather than passed through unrecorded.
        let reason = "only kernel websockets pass the capture gateway; this websocket is refused";
        let _ = shared
            .logger
            .write(vec![Entry::new(
                RecordType::HttpResponse,
                json!({"id": id, "status": 501, "refused": reason}),
            )])
            .await;
        return plain(
            StatusCode::NOT_IMPLEMENTED,
            format!("nbtrail-gateway: {reason}\n"),
        );
    }
    let response = forward_http(&shared, req).await;
    let status = response.status();
    let response = if is_sessions_api(&path) && status.is_success() {
        learn_paths(&shared, response).await
    } else {
        response
    };
    let done = json!({"id": id, "status": status.as_u16()});
    if let Err(e) = shared
        .logger
        .write(vec![Entry::new(RecordType::HttpResponse, done)])
        .await
    {
        return unlogged("response withheld", &e);
    }
    response
}

/// The answer when what would be forwarded could not be logged (fail closed).
fn unlogged(what: &str, error: &str) -> Response<Body> {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("nbtrail-gateway: {what}: the capture log cannot be written: {error}\n"),
    )
}

fn is_websocket_upgrade(h: &hyper::HeaderMap) -> bool {
    h.get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A browser request from another origin (the `Origin` host is not the `Host` it was sent to).
/// The gateway checks this itself because it rewrites `Host` for the upstream.
fn origin_mismatch(h: &hyper::HeaderMap) -> Option<String> {
    let origin = h.get(header::ORIGIN)?.to_str().ok()?;
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split("://").nth(1).unwrap_or(origin);
    (origin != "null" && !origin_host.eq_ignore_ascii_case(host))
        .then(|| format!("cross-origin request refused (Origin {origin}, Host {host})"))
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn upstream_uri(shared: &Shared, path_and_query: &str, ws: bool) -> String {
    let u = &shared.cfg.upstream;
    let scheme = match (u.scheme_str(), ws) {
        (Some("https"), true) => "wss",
        (_, true) => "ws",
        (Some(s), false) => s,
        (None, false) => "http",
    };
    let authority = u
        .authority()
        .map_or("127.0.0.1", hyper::http::uri::Authority::as_str);
    format!("{scheme}://{authority}{path_and_query}")
}

async fn forward_http(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str);
    let uri: hyper::Uri = match upstream_uri(shared, pq, false).parse() {
        Ok(u) => u,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("bad upstream URI: {e}\n")),
    };
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(uri.clone());
    for (k, v) in &parts.headers {
        if HOP_BY_HOP.contains(&k.as_str())
            || k == header::HOST
            || k == header::ORIGIN
            || k == identity::PROXY_SECRET_HEADER
        {
            continue;
        }
        out = out.header(k, v);
    }
    if let Some(a) = uri.authority() {
        out = out.header(header::HOST, a.as_str());
    }
    if let Some(h) = parts.headers.get(header::HOST) {
        out = out.header(HeaderName::from_static("x-forwarded-host"), h);
    }
    let req = match out.body(body.boxed()) {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("building upstream request: {e}\n"),
            );
        }
    };
    match shared.client.request(req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(h);
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => plain(
            StatusCode::BAD_GATEWAY,
            format!("nbtrail-gateway: upstream unreachable: {e}\n"),
        ),
    }
}

/// Reads a sessions-API answer to learn kernel → notebook path, and passes it on unchanged.
async fn learn_paths(shared: &Shared, resp: Response<Body>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_SESSIONS_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("reading upstream answer: {e}\n"),
            );
        }
    };
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        remember_sessions(shared, &v);
    }
    Response::from_parts(parts, full(bytes))
}

fn remember_sessions(shared: &Shared, v: &Value) {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        o => vec![o],
    };
    let mut map = shared.paths.lock().expect("paths lock");
    let mut sessions = shared.session_kernels.lock().expect("sessions lock");
    for s in items {
        let kernel = s["kernel"]["id"].as_str();
        let path = s["path"].as_str().or(s["notebook"]["path"].as_str());
        if let (Some(k), Some(p)) = (kernel, path) {
            map.insert(k.to_string(), p.to_string());
        }
        if let (Some(k), Some(id)) = (kernel, s["id"].as_str()) {
            sessions.insert(id.to_string(), k.to_string());
        }
    }
}

/// Asks the upstream's sessions API (with the browser's credentials) for a kernel's notebook path.
async fn lookup_path(
    shared: &Shared,
    headers: &hyper::HeaderMap,
    path: &str,
    kernel: &str,
) -> Option<String> {
    if let Some(p) = shared.paths.lock().expect("paths lock").get(kernel) {
        return Some(p.clone());
    }
    let prefix = &path[..path.find("/api/kernels/")?];
    let uri: hyper::Uri = upstream_uri(shared, &format!("{prefix}/api/sessions"), false)
        .parse()
        .ok()?;
    let mut req = Request::builder().method("GET").uri(uri.clone());
    for k in [header::AUTHORIZATION, header::COOKIE] {
        if let Some(v) = headers.get(&k) {
            req = req.header(k, v);
        }
    }
    req = req.header(header::HOST, uri.authority()?.as_str());
    let req = req
        .body(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .ok()?;
    let resp = shared.client.request(req).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let bytes = http_body_util::Limited::new(resp.into_body(), MAX_SESSIONS_BODY)
        .collect()
        .await
        .ok()?
        .to_bytes();
    remember_sessions(shared, &serde_json::from_slice(&bytes).ok()?);
    shared
        .paths
        .lock()
        .expect("paths lock")
        .get(kernel)
        .cloned()
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(1 << 30))
        .max_frame_size(Some(1 << 30))
}

async fn websocket(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    remote: SocketAddr,
    user: Option<String>,
    kernel_id: String,
    request_id: u64,
) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return plain(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key\n".into(),
        );
    };
    let path = req.uri().path().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let ws_session = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("session_id="))
            .map(str::to_string)
    });
    // Connect upstream first, offering what the browser offered.
    let mut up_req = match upstream_uri(&shared, &pq, true).into_client_request() {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("bad upstream URI: {e}\n")),
    };
    for k in [
        header::AUTHORIZATION,
        header::COOKIE,
        header::USER_AGENT,
        header::SEC_WEBSOCKET_PROTOCOL,
    ] {
        if let Some(v) = req.headers().get(&k) {
            up_req.headers_mut().insert(k, v.clone());
        }
    }
    let (upstream, up_resp) =
        match tokio_tungstenite::connect_async_with_config(up_req, Some(ws_config()), true).await {
            Ok(x) => x,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status();
                let body = resp.body().clone().unwrap_or_default();
                let _ = shared
                    .logger
                    .write(vec![Entry::new(
                        RecordType::HttpResponse,
                        json!({"id": request_id, "status": status.as_u16()}),
                    )])
                    .await;
                let mut r = Response::new(full(body));
                *r.status_mut() = status;
                return r;
            }
            Err(e) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    format!("nbtrail-gateway: upstream websocket failed: {e}\n"),
                );
            }
        };
    let protocol = up_resp
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .cloned();
    let v1 = protocol
        .as_ref()
        .and_then(|p| p.to_str().ok())
        .is_some_and(|p| p.trim() == frames::V1_PROTOCOL);
    let notebook_path = lookup_path(&shared, req.headers(), &path, &kernel_id).await;
    let info = ConnInfo {
        conn: shared.conns.fetch_add(1, Ordering::Relaxed) + 1,
        user,
        auth: shared.cfg.identity.mode(),
        remote: remote.to_string(),
        kernel_id,
        ws_session,
        notebook_path,
    };
    let open = json!({
        "conn": info.conn,
        "request": request_id,
        "user": info.user,
        "auth": info.auth,
        "remote": info.remote,
        "kernel_id": info.kernel_id,
        "ws_session": info.ws_session,
        "notebook_path": info.notebook_path,
        "subprotocol": protocol.as_ref().and_then(|p| p.to_str().ok()),
    });
    if let Err(e) = shared
        .logger
        .write(vec![Entry::new(RecordType::WsOpen, open)])
        .await
    {
        return unlogged("refused", &e);
    }
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(&mut req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("websocket upgrade from {remote}: {e}");
                return;
            }
        };
        // The browser side is bounded by --max-message-bytes (twice it, so a frame just over the bound is
        // still read, recorded by size and hash, and refused with a notice; a larger one ends the
        // connection): one client cannot make the gateway hold a gigabyte.
        let client_limit = shared.cfg.bounds.max_message_bytes.saturating_mul(2);
        let client = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(
                ws_config()
                    .max_message_size(Some(client_limit))
                    .max_frame_size(Some(client_limit)),
            ),
        )
        .await;
        pump(shared, info, v1, client, upstream).await;
    });
    resp
}

/// One frame on its way: the receipt of its record, what to forward, what to say if it cannot be.
struct InFlight {
    receipt: Option<logger::Receipt>,
    frame: WsMessage,
    /// Channel and headers of the decoded message (its body is in the record).
    decoded: Option<frames::Message>,
    /// Set when the frame must not be forwarded (recorded, then refused): why.
    refuse: Option<String>,
}

impl InFlight {
    /// Waits until the frame's record is on disk (frames without a record, pings and pongs, are ready).
    async fn durable(&mut self) -> Result<(), String> {
        match self.receipt.take() {
            None => Ok(()),
            Some(r) => logger::settle(r).await.map(|_| ()),
        }
    }

    /// Once its record is durable: `Ok` when the frame may be forwarded, else why not — its refusal, or
    /// the log's failure worded by `unlogged`.
    async fn verdict(&mut self, unlogged: impl FnOnce(String) -> String) -> Result<(), String> {
        match (self.durable().await, self.refuse.take()) {
            (Ok(()), None) => Ok(()),
            (Ok(()), Some(why)) => Err(why),
            (Err(reason), _) => Err(unlogged(reason)),
        }
    }
}

/// Reads one side's frames: records each (submitted, not awaited) and queues it, in order, for the
/// forwarder, which sends it on once the record is durable. Returns who ended the connection.
async fn read_side<S>(
    mut rx: S,
    dir: Direction,
    info: &ConnInfo,
    v1: bool,
    shared: &Shared,
    queue: mpsc::Sender<InFlight>,
) -> &'static str
where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    let (bounds, logger, quota) = (shared.cfg.bounds, &shared.logger, &shared.quota);
    let (closed, failed) = match dir {
        Direction::ToKernel => ("client", "client error"),
        Direction::ToClient => ("kernel", "kernel error"),
    };
    while let Some(next) = rx.next().await {
        let Ok(frame) = next else {
            return failed;
        };
        let bytes = frame_bytes(&frame);
        let to_kernel = dir == Direction::ToKernel;
        let oversize = to_kernel && bytes.len() > bounds.max_message_bytes;
        let decoded = decode(&frame, v1);
        // Past the user's quota: refused (to the kernel) or withheld (to the browser), kept by size and hash.
        // Towards the browser only what is shown (outputs) is withheld; status and replies, which keep
        // the notebook working, pass (recorded as usual).
        let over_quota = match &decoded {
            Some(d) => {
                let charged = quota.charge(info.user.as_deref(), bytes.len()).err();
                let shown = to_kernel
                    || d.as_ref().is_ok_and(|m| {
                        matches!(
                            m.header.get("msg_type").and_then(Value::as_str),
                            Some(
                                "stream"
                                    | "display_data"
                                    | "update_display_data"
                                    | "execute_result"
                                    | "error"
                            )
                        )
                    });
                charged.filter(|_| shown)
            }
            None => None,
        };
        // Fail closed towards the kernel: a frame too large to record whole, or one the gateway cannot
        // decode (so cannot show as what it is), is recorded by size and hash and never forwarded.
        let (entry, heads, refuse) = match decoded {
            Some(Ok(m)) if over_quota.is_some() => {
                let why = format!(
                    "{}: {}",
                    if to_kernel {
                        "not forwarded"
                    } else {
                        "output withheld"
                    },
                    over_quota.unwrap_or_default()
                );
                let e = record::quota_entry(info, dir, &m, bytes, &why);
                (Some(e), Some(m.heads()), Some(why))
            }
            Some(Ok(m)) if oversize => {
                let why = format!(
                    "not forwarded: frame of {} bytes is larger than the gateway's --max-message-bytes {}",
                    bytes.len(),
                    bounds.max_message_bytes
                );
                let e = record::refused_entry(info, dir, bytes, &why, bounds);
                (Some(e), Some(m.heads()), Some(why))
            }
            Some(Ok(m)) => {
                let heads = m.heads();
                (
                    Some(record::message_entry(info, dir, m, bytes, bounds)),
                    Some(heads),
                    None,
                )
            }
            Some(Err(e)) => {
                let refuse =
                    to_kernel.then(|| format!("not forwarded: the gateway cannot decode it ({e})"));
                let entry =
                    record::undecodable_entry(info, dir, bytes, &e, refuse.as_deref(), bounds);
                (Some(entry), None, refuse)
            }
            None => (None, None, None),
        };
        let close = matches!(frame, WsMessage::Close(_));
        let item = InFlight {
            receipt: entry.map(|e| logger.submit(vec![e])),
            frame,
            decoded: heads,
            refuse,
        };
        if queue.send(item).await.is_err() || close {
            break;
        }
    }
    closed
}

fn decode(frame: &WsMessage, v1: bool) -> Option<Result<frames::Message, String>> {
    match frame {
        WsMessage::Text(t) => Some(frames::decode_text(t.as_str())),
        WsMessage::Binary(b) => Some(frames::decode_binary(b, v1)),
        _ => None,
    }
}

fn frame_bytes(frame: &WsMessage) -> &[u8] {
    match frame {
        WsMessage::Text(t) => t.as_str().as_bytes(),
        WsMessage::Binary(b) => b,
        _ => &[],
    }
}

async fn pump<C, U>(
    shared: Arc<Shared>,
    info: ConnInfo,
    v1: bool,
    client: WebSocketStream<C>,
    upstream: WebSocketStream<U>,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_tx, client_rx) = client.split();
    let (mut up_tx, up_rx) = upstream.split();
    // Everything to the browser goes through one queue: forwarded output and the gateway's own notices.
    let (to_client, mut to_client_rx) = mpsc::channel::<WsMessage>(PIPELINE_DEPTH);
    let client_writer = tokio::spawn(async move {
        while let Some(m) = to_client_rx.recv().await {
            let close = matches!(m, WsMessage::Close(_));
            if client_tx.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = client_tx.close().await;
    });

    // Browser → kernel.
    let (q_tx, mut q_rx) = mpsc::channel::<InFlight>(PIPELINE_DEPTH);
    let up_reader = read_side(client_rx, Direction::ToKernel, &info, v1, &shared, q_tx);
    let to_client_k = to_client.clone();
    let up_forward = async move {
        while let Some(mut item) = q_rx.recv().await {
            let why = match item
                .verdict(|reason| {
                    format!("not forwarded: the capture log cannot be written ({reason})")
                })
                .await
            {
                Ok(()) => {
                    if up_tx.send(item.frame).await.is_err() {
                        break;
                    }
                    continue;
                }
                Err(why) => why,
            };
            for m in refusal(item.decoded.as_ref(), &why, v1) {
                let _ = to_client_k.send(m).await;
            }
        }
        let _ = up_tx.close().await;
    };

    // Kernel → browser.
    let (k_tx, mut k_rx) = mpsc::channel::<InFlight>(PIPELINE_DEPTH);
    let down_reader = read_side(up_rx, Direction::ToClient, &info, v1, &shared, k_tx);
    let to_client_d = to_client.clone();
    let down_forward = async move {
        let mut told: HashSet<String> = HashSet::new();
        while let Some(mut item) = k_rx.recv().await {
            let outcome = item
                .verdict(|reason| {
                    format!("output withheld: the capture log cannot be written: {reason}")
                })
                .await;
            match outcome {
                Ok(()) => {
                    if to_client_d.send(item.frame).await.is_err() {
                        break;
                    }
                }
                Err(reason) => {
                    if let Some(m) = item.decoded.as_ref()
                        && let Some(parent) = m.parent_header.get("msg_id").and_then(Value::as_str)
                        && told.insert(parent.to_string())
                    {
                        let text = format!("[nbtrail-gateway] {reason}\n");
                        let notice = notice(
                            &m.parent_header,
                            "iopub",
                            "stream",
                            json!({"name": "stderr", "text": text}),
                            v1,
                        );
                        let _ = to_client_d.send(notice).await;
                    }
                }
            }
        }
    };

    let up = async { tokio::join!(up_reader, up_forward).0 };
    let down = async { tokio::join!(down_reader, down_forward).0 };
    let closed_by = tokio::select! {
        by = up => by,
        by = down => by,
    };
    drop(to_client);
    let _ = shared
        .logger
        .write(vec![Entry::new(
            RecordType::WsClose,
            json!({"conn": info.conn, "kernel_id": info.kernel_id, "user": info.user, "closed_by": closed_by}),
        )])
        .await;
    client_writer.abort();
}

fn new_header(parent: &Value, msg_type: &str) -> Value {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
    json!({
        "msg_id": hex::encode(id),
        "msg_type": msg_type,
        "session": parent.get("session").cloned().unwrap_or(json!("nbtrail-gateway")),
        "username": "nbtrail-gateway",
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "version": "5.3",
    })
}

fn notice(parent: &Value, channel: &str, msg_type: &str, content: Value, v1: bool) -> WsMessage {
    let header = new_header(parent, msg_type);
    match frames::encode(channel, &header, parent, &content, v1) {
        frames::Encoded::Text(t) => WsMessage::text(t),
        frames::Encoded::Binary(b) => WsMessage::binary(b),
    }
}

/// What the browser is told when its message was not forwarded: for a request, an `error` output and
/// an error reply (so the cell stops waiting and shows why); otherwise a `stream` notice.
fn refusal(msg: Option<&frames::Message>, reason: &str, v1: bool) -> Vec<WsMessage> {
    let Some(m) = msg else {
        return Vec::new();
    };
    let text = format!("nbtrail-gateway: {reason}");
    let error = json!({
        "ename": "CaptureRefused",
        "evalue": text,
        "traceback": [text],
    });
    let parent = &m.header;
    let mut out = Vec::new();
    match m.msg_type().and_then(|t| t.strip_suffix("_request")) {
        Some(base) => {
            // What a kernel would send for a failed request: busy, the error, the reply, idle — clients
            // (JupyterLab's futures) consider a request done only after both the reply and idle.
            out.push(notice(
                parent,
                "iopub",
                "status",
                json!({"execution_state": "busy"}),
                v1,
            ));
            out.push(notice(parent, "iopub", "error", error.clone(), v1));
            let mut reply = error;
            reply["status"] = json!("error");
            reply["execution_count"] = Value::Null;
            let channel = m.channel.as_deref().unwrap_or("shell");
            out.push(notice(parent, channel, &format!("{base}_reply"), reply, v1));
            out.push(notice(
                parent,
                "iopub",
                "status",
                json!({"execution_state": "idle"}),
                v1,
            ));
        }
        None => out.push(notice(
            parent,
            "iopub",
            "stream",
            json!({"name": "stderr", "text": format!("{text}\n")}),
            v1,
        )),
    }
    out
}
