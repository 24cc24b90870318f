//! A real Jupyter server, the real gateway in front of it, and a client that talks to kernels over the
//! websocket the way a browser does. Used by tests/gateway.rs.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use nbtrail_gateway::frames;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const JUPYTER_TOKEN: &str = "jupyter-test-token";
pub const V1: &str = "v1.kernel.websocket.jupyter.org";

/// The workspace root (this file is shared by the root tests and the gateway crate's benchmark).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("Cargo.lock").exists())
        .expect("workspace root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The venv with jupyter_server and ipykernel, created from tests/jupyter-requirements.txt on first use.
pub fn jupyter_venv() -> PathBuf {
    venv("jupyter-venv", "jupyter-requirements.txt")
}

/// `target/NAME`, a venv with `tests/REQUIREMENTS` installed, created on first use (and again when the
/// requirements change).
pub fn venv(name: &str, requirements: &str) -> PathBuf {
    let root = workspace_root();
    let venv = root.join("target").join(name);
    let reqs = root.join("tests").join(requirements);
    let stamp = venv.join("nbtrail-requirements.txt");
    let wanted = std::fs::read_to_string(&reqs).expect("requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return venv;
    }
    // One process at a time creates it (test binaries may run in parallel).
    let lock = root.join("target").join(format!("{name}.lock"));
    let start = Instant::now();
    while std::fs::create_dir(&lock).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "stale {}",
            lock.display()
        );
        std::thread::sleep(Duration::from_millis(500));
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return venv;
        }
    }
    let ok = (|| {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .ok()?;
        st.success().then_some(())?;
        let st = Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&reqs)
            .status()
            .ok()?;
        st.success().then_some(())
    })();
    let _ = std::fs::remove_dir(&lock);
    assert!(
        ok.is_some(),
        "could not create the venv at {}",
        venv.display()
    );
    std::fs::write(&stamp, wanted).unwrap();
    venv
}

/// The gateway binary, built if needed.
pub fn gateway_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = if target_dir().ends_with("release") {
        "release"
    } else {
        "dev"
    };
    let st = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--profile",
            profile,
            "-p",
            "nbtrail-gateway",
        ])
        .args(["--bin", "nbtrail-gateway"])
        .current_dir(workspace_root())
        .status()
        .expect("cargo build runs");
    assert!(st.success(), "building nbtrail-gateway failed");
    let bin = target_dir().join("nbtrail-gateway");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// `nbtrail-gateway --generate-key PATH`; returns the public key it prints.
pub fn generate_key(path: &Path) -> String {
    let out = Command::new(gateway_binary())
        .arg("--generate-key")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `jupyter server`.
pub struct Jupyter {
    pub port: u16,
    pub root: PathBuf,
    _proc: Proc,
}

impl Jupyter {
    pub fn start(dir: &Path) -> Jupyter {
        let venv = jupyter_venv();
        let port = free_port();
        let root = dir.join("notebooks");
        let home = dir.join("jupyter-home");
        for d in [&root, &home] {
            std::fs::create_dir_all(d).unwrap();
        }
        let log = std::fs::File::create(dir.join("jupyter.log")).unwrap();
        let child = Command::new(venv.join("bin").join("jupyter"))
            .args(["server", "--no-browser", "--ip=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--ServerApp.token={JUPYTER_TOKEN}"))
            .arg(format!("--ServerApp.root_dir={}", root.display()))
            .arg("--allow-root")
            .env("HOME", &home)
            .env("JUPYTER_CONFIG_DIR", home.join("config"))
            .env("JUPYTER_DATA_DIR", home.join("data"))
            .env("JUPYTER_RUNTIME_DIR", home.join("runtime"))
            .env("IPYTHONDIR", home.join("ipython"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("jupyter server starts");
        let j = Jupyter {
            port,
            root,
            _proc: Proc(child),
        };
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = http(
                &format!("127.0.0.1:{port}"),
                "GET",
                "/api/status",
                &[("Authorization", &format!("token {JUPYTER_TOKEN}"))],
                None,
            ) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "jupyter server did not come up: {}",
                std::fs::read_to_string(dir.join("jupyter.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        j
    }
}

/// The secret the tests' "authenticating proxy" presents with its identity header.
pub const PROXY_SECRET: &str = "test-proxy-secret-0123456789";

/// A running `nbtrail-gateway`.
pub struct Gateway {
    pub addr: String,
    pub proc: Proc,
}

impl Gateway {
    /// Starts the gateway in front of `upstream_port`. When the tests run as root, the gateway runs as
    /// `nobody` (via setpriv) so that file permissions on its log directory mean something.
    pub fn start(upstream_port: u16, log_dir: &Path, extra: &[&str], as_nobody: bool) -> Gateway {
        let mut bin = gateway_binary();
        if as_nobody {
            // `nobody` may not be able to reach the build directory: run a copy next to the log dir.
            let copy = log_dir
                .parent()
                .expect("log dir has a parent")
                .join("nbtrail-gateway");
            std::fs::copy(&bin, &copy).expect("copy the gateway binary");
            bin = copy;
        }
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        if extra.contains(&"--user-header") && !extra.contains(&"--trusted-proxy") {
            // The tests play the authenticating proxy, from 127.0.0.1, with the shared secret.
            let secret = log_dir
                .parent()
                .expect("log dir has a parent")
                .join("proxy-secret");
            std::fs::write(&secret, format!("{PROXY_SECRET}\n")).unwrap();
            cmd.args(["--trusted-proxy", "127.0.0.1", "--proxy-secret-file"])
                .arg(&secret);
        }
        cmd.args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(format!("http://127.0.0.1:{upstream_port}"))
            .arg("--log-dir")
            .arg(log_dir)
            .args(extra)
            .env("NBTRAIL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("gateway starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("nbtrail-gateway listening on ")
            .unwrap_or_else(|| panic!("unexpected gateway output {line:?}"))
            .to_string();
        Gateway {
            addr,
            proc: Proc(child),
        }
    }

    /// Stops it with SIGTERM (so it closes its log) and waits.
    pub fn stop(mut self) {
        let pid = self.proc.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.proc.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not stop on SIGTERM");
    }
}

/// A minimal HTTP/1.1 exchange (Connection: close). Returns (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body
        .map(std::string::ToString::to_string)
        .unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let body = match text.split_once("\r\n\r\n") {
        Some((head, b))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(b)
        }
        Some((_, b)) => b.to_string(),
        None => String::new(),
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The kernel websocket, driven like a browser.
pub struct KernelClient {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub session: String,
    pub v1: bool,
    n: u64,
}

/// Everything a request produced.
#[derive(Debug, Default)]
pub struct Exchange {
    pub msg_id: String,
    pub messages: Vec<Value>,
}

impl Exchange {
    pub fn of_type(&self, t: &str) -> Vec<&Value> {
        self.messages
            .iter()
            .filter(|m| m["header"]["msg_type"] == t)
            .collect()
    }
    pub fn stdout(&self) -> String {
        self.of_type("stream")
            .iter()
            .map(|m| m["content"]["text"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

impl KernelClient {
    pub async fn connect(
        addr: &str,
        kernel_id: &str,
        headers: &[(&str, &str)],
        v1: bool,
    ) -> KernelClient {
        let session = format!("client-session-{}", if v1 { "v1" } else { "json" });
        let url = format!("ws://{addr}/api/kernels/{kernel_id}/channels?session_id={session}");
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(hyper_name(k), v.parse().unwrap());
        }
        if v1 {
            req.headers_mut()
                .insert("sec-websocket-protocol", V1.parse().unwrap());
        }
        let (ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket through the gateway");
        let chosen = resp
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            chosen.as_deref() == Some(V1),
            v1,
            "subprotocol negotiated through the gateway"
        );
        KernelClient {
            ws,
            session,
            v1,
            n: 0,
        }
    }

    fn header(&mut self, msg_type: &str) -> Value {
        self.n += 1;
        json!({
            "msg_id": format!("{}-{}-{}", self.session, msg_type, self.n),
            "msg_type": msg_type,
            "session": self.session,
            // A client can write anything here; the gateway must not believe it.
            "username": "mallory",
            "date": "2026-11-22T00:00:00.000Z",
            "version": "5.3",
        })
    }

    /// Sends `text` as one text frame, as is (for frames a normal client would not build).
    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// A new header for `msg_type` (its `msg_id` names the request for `collect`).
    pub fn new_header(&mut self, msg_type: &str) -> Value {
        self.header(msg_type)
    }

    pub async fn send(
        &mut self,
        channel: &str,
        msg_type: &str,
        content: Value,
        parent: Value,
    ) -> String {
        let header = self.header(msg_type);
        let id = header["msg_id"].as_str().unwrap().to_string();
        let frame = if self.v1 {
            Message::binary(encode_v1(channel, &header, &parent, &content))
        } else {
            Message::text(
                json!({"channel": channel, "header": header, "parent_header": parent, "metadata": {}, "content": content, "buffers": []})
                    .to_string(),
            )
        };
        self.ws.send(frame).await.unwrap();
        id
    }

    async fn next(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .expect("kernel answered within 60 s")
                .expect("websocket open")
                .expect("websocket frame");
            match m {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Binary(b) => return decode_binary(&b, self.v1),
                _ => continue,
            }
        }
    }

    /// Runs code; answers `input_request`s with `inputs` in turn; returns everything with this parent
    /// until the shell reply and the idle status have both arrived.
    pub async fn execute(&mut self, code: &str, silent: bool, inputs: &[&str]) -> Exchange {
        let content = json!({
            "code": code, "silent": silent, "store_history": !silent,
            "user_expressions": {}, "allow_stdin": !inputs.is_empty(), "stop_on_error": true,
        });
        let id = self
            .send("shell", "execute_request", content, json!({}))
            .await;
        self.collect(&id, inputs, true).await
    }

    pub async fn collect(&mut self, id: &str, inputs: &[&str], expect_reply: bool) -> Exchange {
        let mut ex = Exchange {
            msg_id: id.to_string(),
            ..Default::default()
        };
        let mut inputs = inputs.iter();
        let (mut replied, mut idle) = (!expect_reply, false);
        while !(replied && idle) {
            let m = self.next().await;
            if m["parent_header"]["msg_id"] != id {
                continue;
            }
            let t = m["header"]["msg_type"].as_str().unwrap_or("").to_string();
            if t.ends_with("_reply") {
                replied = true;
            }
            if t == "status" && m["content"]["execution_state"] == "idle" {
                idle = true;
            }
            if t == "input_request" {
                let value = inputs.next().expect("an answer for every prompt");
                let parent = m["header"].clone();
                self.send("stdin", "input_reply", json!({"value": value}), parent)
                    .await;
            }
            ex.messages.push(m);
        }
        ex
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

fn hyper_name(k: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    k.to_ascii_lowercase().parse().unwrap()
}

/// A v1 binary frame, built by the gateway's own framing code.
pub fn encode_v1(channel: &str, header: &Value, parent: &Value, content: &Value) -> Vec<u8> {
    match frames::encode(channel, header, parent, content, true) {
        frames::Encoded::Binary(b) => b,
        frames::Encoded::Text(_) => unreachable!("v1 frames are binary"),
    }
}

/// A binary frame (v1 or legacy) as the JSON message a text frame would carry.
fn decode_binary(b: &[u8], v1: bool) -> Value {
    let m = frames::decode_binary(b, v1).expect("a kernel frame");
    json!({
        "channel": m.channel,
        "header": m.header,
        "parent_header": m.parent_header,
        "metadata": m.metadata,
        "content": m.content,
    })
}

/// Every record of a capture log, in order.
pub fn records(log_dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}
