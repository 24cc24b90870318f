//! End-to-end in a real JupyterHub: `jupyterhub` (PyPI) with its real proxy, `configurable-http-proxy`
//! (npm), spawning through the shipped `deploy/jupyterhub/nbtrail_jupyterhub.py` spawner, so every user
//! server has its own `nbtrail-gateway` (run as `nobody` when the tests run as root) with the user fixed by
//! the Hub. A real JupyterLab is driven in headless Chromium (`tests/jupyterhub/drive_lab.mjs`, playwright-core)
//! as a user would: log in, open a notebook from the launcher, type and run cells. Then the capture log is
//! verified, ingested, searched, replayed and analyzed; and a client on the host that goes around the
//! gateway, straight to the single-user server, is refused there.
//!
//! Everything listens on 127.0.0.1 and is started and stopped by the test.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;
mod gateway_support;

use gateway_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "hub-test-password";

/// `tests/jupyterhub/node_modules` from its lock file (configurable-http-proxy, playwright-core).
fn node_modules() -> PathBuf {
    let dir = workspace_root().join("tests").join("jupyterhub");
    let lock = dir.join("package-lock.json");
    let stamp = dir.join("node_modules").join(".nbtrail-lock");
    let wanted = std::fs::read_to_string(&lock).expect("package-lock.json");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(st.success(), "npm ci in {}", dir.display());
        std::fs::write(&stamp, wanted).unwrap();
    }
    dir.join("node_modules")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// The Hub and everything it started; stopped (and anything left over killed) on drop.
struct Hub {
    proc: Option<std::process::Child>,
    dir: PathBuf,
}

impl Hub {
    /// Stops the Hub with SIGTERM: it stops the user servers, the spawner stops their gateways (which
    /// close their logs).
    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &p.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = p.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
        // Whatever still runs from this test's directory (proxy, servers, gateways after a failure).
        let _ = Command::new("pkill")
            .args(["-TERM", "-f", &self.dir.display().to_string()])
            .status();
    }
}

fn write_config(dir: &Path, venv: &Path, node: &Path, ports: [u16; 3], as_nobody: bool) -> PathBuf {
    let [port, hub_port, api_port] = ports;
    let deploy = workspace_root().join("deploy").join("jupyterhub");
    let gateway = gateway_binary();
    let gateway = if as_nobody {
        // `nobody` may not reach the build directory: run a copy in the test's directory.
        let copy = dir.join("nbtrail-gateway");
        std::fs::copy(&gateway, &copy).unwrap();
        copy
    } else {
        gateway
    };
    let py = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap();
    let config = format!(
        r#"import sys
sys.path.insert(0, {deploy})
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.command = [{chp}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.auth_token = "proxy-token-0123456789abcdef"
c.JupyterHub.authenticator_class = "jupyterhub.auth.DummyAuthenticator"
c.DummyAuthenticator.password = "{PASSWORD}"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "nbtrail_jupyterhub.NbtrailSimpleSpawner"
c.NbtrailSimpleSpawner.home_dir_template = {home}
c.NbtrailSimpleSpawner.gateway_command = [{gateway}]
c.NbtrailSimpleSpawner.log_root = {logs}
c.NbtrailSimpleSpawner.gateway_account = "{account}"
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [{singleuser}]
c.Spawner.args = ["--allow-root"]
c.Spawner.env_keep = ["PATH", "LANG"]
c.JupyterHub.db_url = "sqlite:///" + {db}
c.JupyterHub.cookie_secret_file = {cookie}
c.JupyterHub.pid_file = {pid}
"#,
        deploy = py(&deploy),
        chp = py(&node.join(".bin").join("configurable-http-proxy")),
        home = py(&dir.join("home").join("{username}")),
        gateway = py(&gateway),
        logs = py(&dir.join("logs")),
        account = if as_nobody { "nobody" } else { "" },
        singleuser = py(&venv.join("bin").join("jupyterhub-singleuser")),
        db = py(&dir.join("hub.sqlite")),
        cookie = py(&dir.join("cookie_secret")),
        pid = py(&dir.join("hub.pid")),
    );
    let path = dir.join("jupyterhub_config.py");
    std::fs::write(&path, config).unwrap();
    path
}

fn start_hub(dir: &Path) -> (Hub, u16) {
    let venv = venv("hub-venv", "jupyterhub-requirements.txt");
    let node = node_modules();
    let as_nobody = is_root();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(dir.join("home")).unwrap();
    if as_nobody {
        // The gateway (as nobody) must reach its copy of the binary and own its log directory.
        Command::new("chmod").arg("755").arg(dir).status().unwrap();
        Command::new("chown")
            .arg("65534")
            .arg(&logs)
            .status()
            .unwrap();
    }
    let ports = [free_port(), free_port(), free_port()];
    let config = write_config(dir, &venv, &node, ports, as_nobody);
    let log = std::fs::File::create(dir.join("hub.log")).unwrap();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new(venv.join("bin").join("jupyterhub"))
        .arg("-f")
        .arg(&config)
        .current_dir(dir)
        .env("PATH", path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("jupyterhub starts");
    let hub = Hub {
        proc: Some(child),
        dir: dir.to_path_buf(),
    };
    let start = Instant::now();
    // The proxy answers 404 for a moment before the hub's route exists: wait for 200.
    while !matches!(
        http(
            &format!("127.0.0.1:{}", ports[0]),
            "GET",
            "/hub/api",
            &[],
            None
        ),
        Ok((200, _))
    ) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the hub did not come up:\n{}",
            std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    (hub, ports[0])
}

/// Runs cells in JupyterLab in headless Chromium; returns what each cell showed.
fn drive_lab(dir: &Path, port: u16, user: &str, cells: &[&str]) -> Vec<String> {
    let script = workspace_root()
        .join("tests")
        .join("jupyterhub")
        .join("drive_lab.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}"))
        .args([user, PASSWORD])
        .args(cells)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "driving JupyterLab failed:\n{}\nhub log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default()
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("driver prints JSON");
    v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn jupyterhub_lab_cells_are_captured_under_the_hub_user_and_direct_connections_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, port) = start_hub(dir.path());
    let outputs = drive_lab(
        dir.path(),
        port,
        "alice",
        &[
            "print('hub-cell', 6 * 7)",
            "import os\napi_key = os.environ.get('API_TOKEN', 'dev-token')\nprint('key', api_key)",
        ],
    );
    assert_eq!(outputs[0].trim(), "hub-cell 42", "{outputs:?}");
    assert_eq!(outputs[1].trim(), "key dev-token", "{outputs:?}");

    let log_dir = dir.path().join("logs").join("alice");
    let recs = records(&log_dir);
    // The Hub's proxy routed the user's traffic to the gateway, which records the Hub's user.
    let upstream = recs[0]["writer"]["upstream"]
        .as_str()
        .expect("segment_start names the upstream")
        .trim_end_matches('/')
        .trim_start_matches("http://")
        .to_string();
    assert_eq!(recs[0]["writer"]["identity"], "fixed");

    // Attack: a client on the host goes around the gateway, straight to the single-user server, with a
    // forged identity header. The server checks the Hub's OAuth itself: refused, nothing runs.
    let marker = dir.path().join("direct-marker");
    for (method, path) in [
        ("POST", "/user/alice/api/sessions"),
        ("GET", "/user/alice/api/kernels"),
        ("GET", "/user/alice/api/contents"),
    ] {
        let body = serde_json::json!({"path": "direct.ipynb", "type": "notebook", "kernel": {"name": "python3"}});
        let (status, text) = http(
            &upstream,
            method,
            path,
            &[
                ("X-Forwarded-User", "alice"),
                ("Content-Type", "application/json"),
            ],
            Some(&body),
        )
        .unwrap();
        assert!(
            [302, 401, 403].contains(&status),
            "direct {method} {path} to the single-user server answered {status}: {text}"
        );
    }
    hub.stop();
    assert!(!marker.exists());

    // The gateway closed its log on the spawner's SIGTERM; the log verifies.
    let recs = records(&log_dir);
    assert_eq!(
        recs.last().unwrap()["type"],
        "segment_end",
        "the gateway was stopped with the server"
    );
    let v = common::json(["verify-log", "--json", log_dir.to_str().unwrap()]);
    assert_eq!(v["ok"], true, "{v}");
    let executed: Vec<&Value> = recs
        .iter()
        .filter(|r| r["msg_type"] == "execute_request")
        .collect();
    assert_eq!(executed.len(), 2, "one record per cell run");
    assert!(executed.iter().all(|r| r["user"] == "alice"));
    assert!(
        recs.iter()
            .filter(|r| r["type"] == "http")
            .all(|r| r["user"] == "alice" && r["auth"] == "fixed")
    );
    // No request ever reached the server around the gateway: the only kernel is the one opened through it.
    assert!(!recs.iter().any(|r| {
        r["path"]
            .as_str()
            .is_some_and(|p| p.contains("direct.ipynb"))
    }));

    // Ingested: replay shows the cells and what they printed under the Hub's user; search finds them;
    // the analyzer sees the key printed.
    let case = dir.path().join("case");
    let report = common::json([
        "ingest",
        "--case",
        case.to_str().unwrap(),
        log_dir.to_str().unwrap(),
    ]);
    assert_eq!(report["errors"].as_array().unwrap().len(), 0, "{report}");
    let sessions = common::json(["sessions", "--case", case.to_str().unwrap(), "--json"]);
    let s = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["cells"].as_u64() == Some(2))
        .unwrap_or_else(|| panic!("no session with the two cells: {sessions}"));
    assert_eq!(s["users"], serde_json::json!(["alice"]));
    assert!(
        s["notebook_path"]
            .as_str()
            .is_some_and(|p| p.ends_with(".ipynb")),
        "{s}"
    );
    let replay = common::json([
        "replay",
        "--case",
        case.to_str().unwrap(),
        s["id"].as_str().unwrap(),
        "--json",
    ]);
    let cells = replay["cells"].as_array().unwrap();
    assert_eq!(cells[0]["code"], "print('hub-cell', 6 * 7)");
    assert_eq!(cells[0]["outputs"][0]["text"], "hub-cell 42\n");
    assert_eq!(cells[1]["user"], "alice");
    let hits = common::search(&case, "code:\"hub-cell\"");
    assert_eq!(hits["total"], 1, "{hits}");
    let hits = common::search(&case, "output:\"key dev-token\"");
    assert_eq!(hits["total"], 1, "{hits}");
    let out = common::nbtrail(["analyze", "--case", case.to_str().unwrap()]);
    assert!(matches!(out.status.code(), Some(0 | 1)));
    let findings = common::json(["findings", "--case", case.to_str().unwrap(), "--json"]);
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "NBT001" && f["cell"]["event_id"] == cells[1]["event_id"]),
        "{findings}"
    );
}
