//! End-to-end: a real `jupyter_server` + `ipykernel` (from PyPI, in target/jupyter-venv) behind the real
//! `nbtrail-gateway`, driven over the kernel websocket like a browser; then the capture log is checked
//! record by record, verified, tampered with, and ingested into a case.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;
mod gateway_support;

use gateway_support::*;
use serde_json::{Value, json};
use std::path::Path;

const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

fn auth(user: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("token {JUPYTER_TOKEN}")),
        ("X-Auth-User", user.to_string()),
        ("X-Nbtrail-Proxy-Secret", PROXY_SECRET.to_string()),
    ]
}

fn as_refs<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Starts a notebook session through the gateway and returns its kernel id.
fn start_session(gw: &str, path: &str, user: &str) -> String {
    let h = auth(user);
    let mut headers = as_refs(&h);
    headers.push(("Content-Type", "application/json"));
    let (status, body) = http(
        gw,
        "POST",
        "/api/sessions",
        &headers,
        Some(
            &json!({"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}}),
        ),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["kernel"]["id"].as_str().unwrap().to_string()
}

/// A real Jupyter server behind the gateway (header identity from the tests' proxy, plus `extra`
/// arguments), with a notebook session for `path` started as `user`, and that user's request headers.
struct Rig {
    dir: tempfile::TempDir,
    log_dir: std::path::PathBuf,
    jupyter: Jupyter,
    gw: Gateway,
    kernel_id: String,
    h: Vec<(&'static str, String)>,
}

impl Rig {
    fn start(path: &str, user: &str, extra: &[&str]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("capture");
        std::fs::create_dir(&log_dir).unwrap();
        let jupyter = Jupyter::start(dir.path());
        let mut args = vec!["--user-header", "X-Auth-User"];
        args.extend(extra);
        let gw = Gateway::start(jupyter.port, &log_dir, &args, false);
        let kernel_id = start_session(&gw.addr, path, user);
        Rig {
            dir,
            log_dir,
            jupyter,
            gw,
            kernel_id,
            h: auth(user),
        }
    }
}

fn kernel_messages<'a>(recs: &'a [Value], msg_type: &str) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| r["type"] == "kernel_message" && r["msg_type"] == msg_type)
        .collect()
}

fn request_with_code<'a>(recs: &'a [Value], needle: &str) -> &'a Value {
    kernel_messages(recs, "execute_request")
        .into_iter()
        .find(|r| r["content"]["code"].as_str().unwrap_or("").contains(needle))
        .unwrap_or_else(|| panic!("no execute_request with {needle:?} in the capture log"))
}

fn children<'a>(recs: &'a [Value], parent: &Value, msg_type: &str) -> Vec<&'a Value> {
    kernel_messages(recs, msg_type)
        .into_iter()
        .filter(|r| r["parent_msg_id"] == parent["msg_id"])
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_records_every_execution_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("capture");
    std::fs::create_dir(&log_dir).unwrap();
    let key = dir.path().join("gateway.key");
    let pubkey = generate_key(&key);
    let jupyter = Jupyter::start(dir.path());
    let key_arg = key.display().to_string();
    let gw = Gateway::start(
        jupyter.port,
        &log_dir,
        &[
            "--user-header",
            "X-Auth-User",
            "--sign-key",
            &key_arg,
            "--checkpoint-every",
            "7",
            "--max-field-bytes",
            "4096",
        ],
        false,
    );

    // Unauthenticated requests are refused (and logged).
    let (status, body) = http(
        &gw.addr,
        "GET",
        "/api/kernels",
        &[("Authorization", &format!("token {JUPYTER_TOKEN}"))],
        None,
    )
    .unwrap();
    assert_eq!(status, 401, "{body}");
    // Terminals and other websockets would run code unrecorded: refused.
    let hdrs = auth("alice");
    let mut upgrade = as_refs(&hdrs);
    upgrade.extend([
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]);
    let (status, body) = http(&gw.addr, "GET", "/terminals/websocket/1", &upgrade, None).unwrap();
    assert_eq!(status, 403, "{body}");
    // Issue 15: routes are an allow-list. A REST execute endpoint (as extensions add), a proxied port
    // and the terminals API are refused before they reach the server; so is a websocket on any route
    // but a kernel's channels.
    for (method, path) in [
        ("POST", "/api/kernels/0000/execute"),
        ("GET", "/proxy/8080/"),
        ("POST", "/api/terminals"),
        ("GET", "/made/up/extension/route"),
    ] {
        let (status, body) =
            http(&gw.addr, method, path, &as_refs(&hdrs), Some(&json!({}))).unwrap();
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(
            body.contains("allow-list") || body.contains("cannot record"),
            "{body}"
        );
    }
    let (status, body) = http(&gw.addr, "GET", "/api/events/subscribe", &upgrade, None).unwrap();
    assert_eq!(status, 403, "{body}");
    let kernel_id = start_session(&gw.addr, "analysis/audit.ipynb", "alice");

    let h = auth("alice");
    let headers = as_refs(&h);
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &headers, false).await;
    let marker_dir = dir.path().display().to_string();

    let ex = k.execute("x = 21 * 2", false, &[]).await;
    assert_eq!(ex.of_type("execute_reply")[0]["content"]["status"], "ok");
    let ex = k.execute("print('hello', x)", false, &[]).await;
    assert_eq!(ex.stdout(), "hello 42\n");
    let ex = k
        .execute(
            &format!("from IPython.display import display, HTML, Image\nimport base64\ndisplay(HTML('<b>bold</b><script>alert(1)</script>'))\ndisplay(Image(data=base64.b64decode('{PNG_1X1}')))\n'a' * 10000"),
            false,
            &[],
        )
        .await;
    assert_eq!(ex.of_type("display_data").len(), 2);
    assert_eq!(ex.of_type("execute_result").len(), 1);
    let ex = k.execute("1/0", false, &[]).await;
    assert_eq!(
        ex.of_type("error")[0]["content"]["ename"],
        "ZeroDivisionError"
    );
    let ex = k
        .execute("name = input('Name: ')\nimport getpass\npw = getpass.getpass('Password: ')\nprint('got', name, len(pw))", false, &["Bob", "s3cret-pw"])
        .await;
    assert_eq!(ex.stdout(), "got Bob 9\n");
    // Silent execution: ipykernel broadcasts no execute_input for it.
    let ex = k.execute("silent_marker = 'SILENT-RAN'", true, &[]).await;
    assert!(ex.of_type("execute_input").is_empty());
    // The user switches IPython's own logging off and wipes the history database.
    k.execute(
        &format!("%logstart -o {marker_dir}/ipython.log"),
        false,
        &[],
    )
    .await;
    k.execute("%logstop", false, &[]).await;
    k.execute("after_logstop = 'AFTER-LOGSTOP'", false, &[])
        .await;
    let ex = k
        .execute("hm = get_ipython().history_manager\nhm.db.execute('DELETE FROM history'); hm.db.commit()\nwiped = 'HISTORY-WIPED'\nprint(hm.db.execute('SELECT count(*) FROM history').fetchone()[0])", false, &[])
        .await;
    assert_eq!(ex.stdout(), "0\n");
    // Code run through a comm instead of execute_request.
    k.execute(
        "def _target(comm, open_msg):\n    @comm.on_msg\n    def _(msg):\n        exec(msg['content']['data']['code'], globals())\nget_ipython().kernel.comm_manager.register_target('nbtrail_exec', _target)",
        false,
        &[],
    )
    .await;
    let open_id = k
        .send(
            "shell",
            "comm_open",
            json!({"comm_id": "c0ffee", "target_name": "nbtrail_exec", "data": {}}),
            json!({}),
        )
        .await;
    k.collect(&open_id, &[], false).await;
    let msg_id = k
        .send("shell", "comm_msg", json!({"comm_id": "c0ffee", "data": {"code": "via_comm = 'VIA-COMM'\nprint('COMM-RAN')"}}), json!({}))
        .await;
    let ex = k.collect(&msg_id, &[], false).await;
    assert_eq!(ex.stdout(), "COMM-RAN\n");
    // A kernel-side widget comm: comm_open/comm_msg/comm_close towards the browser.
    k.execute("from comm import create_comm\nw = create_comm(target_name='jupyter.widget', data={'state': {'value': 1}})\nw.send({'method': 'update', 'state': {'value': 2}})\nw.close()", false, &[]).await;
    let ex = k
        .execute(
            "print(silent_marker, after_logstop, wiped, via_comm)",
            false,
            &[],
        )
        .await;
    assert_eq!(
        ex.stdout(),
        "SILENT-RAN AFTER-LOGSTOP HISTORY-WIPED VIA-COMM\n"
    );
    k.close().await;

    // The v1 binary subprotocol, on a second connection to the same kernel.
    let mut k1 = KernelClient::connect(&gw.addr, &kernel_id, &headers, true).await;
    let ex = k1.execute("print('over v1')", false, &[]).await;
    assert_eq!(ex.stdout(), "over v1\n");
    k1.close().await;
    // The gateway writes a connection's ws_close after it closes; let it land before SIGTERM (a race
    // that made this test flaky on a busy machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let text: String = std::fs::read_dir(&log_dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
            .collect();
        if text.matches("\"type\":\"ws_close\"").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    gw.stop();

    // --- The capture log.
    let recs = records(&log_dir);
    let all_text: String = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    // Identity comes from the authenticated request, never from the message header.
    let msgs: Vec<&Value> = recs
        .iter()
        .filter(|r| r["type"] == "kernel_message")
        .collect();
    assert!(msgs.len() > 50);
    for m in &msgs {
        assert_eq!(m["user"], "alice", "{m}");
        assert_eq!(m["auth"], "header");
        assert_eq!(m["kernel_id"], kernel_id.as_str());
        assert_eq!(m["notebook_path"], "analysis/audit.ipynb");
    }
    assert!(recs.iter().all(|r| r["user"] != "mallory"));
    // Both directions, every message type the issue names.
    for t in [
        "execute_request",
        "execute_reply",
        "execute_input",
        "stream",
        "display_data",
        "execute_result",
        "error",
        "input_request",
        "input_reply",
        "comm_open",
        "comm_msg",
        "comm_close",
        "status",
    ] {
        assert!(!kernel_messages(&recs, t).is_empty(), "no {t} recorded");
    }
    let print = request_with_code(&recs, "print('hello', x)");
    assert_eq!(print["direction"], "to_kernel");
    assert_eq!(print["channel"], "shell");
    assert_eq!(
        print["header"]["username"], "mallory",
        "the header is kept verbatim"
    );
    let out = children(&recs, print, "stream");
    assert_eq!(out[0]["content"]["text"], "hello 42\n");
    assert_eq!(out[0]["direction"], "to_client");
    assert_eq!(
        children(&recs, print, "execute_reply")[0]["content"]["status"],
        "ok"
    );
    let disp = request_with_code(&recs, "display(HTML(");
    let shown = children(&recs, disp, "display_data");
    assert_eq!(
        shown[0]["content"]["data"]["text/html"],
        "<b>bold</b><script>alert(1)</script>"
    );
    assert_eq!(
        shown[1]["content"]["data"]["image/png"]
            .as_str()
            .unwrap()
            .trim(),
        PNG_1X1
    );
    // The 10 000-character result was cut to the cap with its size and hash kept.
    let result = children(&recs, disp, "execute_result")[0];
    assert_eq!(
        result["content"]["data"]["text/plain"]
            .as_str()
            .unwrap()
            .len(),
        4096
    );
    assert_eq!(result["truncated"][0]["path"], "content.data.text/plain");
    assert_eq!(result["truncated"][0]["size"], 10002);
    let err = request_with_code(&recs, "1/0");
    assert_eq!(
        children(&recs, err, "error")[0]["content"]["ename"],
        "ZeroDivisionError"
    );
    let inp = request_with_code(&recs, "getpass.getpass");
    let prompts = children(&recs, inp, "input_request");
    assert_eq!(prompts.len(), 2);
    assert_eq!(prompts[1]["content"]["password"], true);
    let replies: Vec<&Value> = kernel_messages(&recs, "input_reply");
    assert_eq!(replies.len(), 2);
    assert!(
        replies
            .iter()
            .all(|r| r["content"]["value"] == "[redacted by nbtrail-gateway]")
    );
    assert_eq!(replies[1]["redacted"][0]["chars"], 9);
    assert!(
        !all_text.contains("s3cret-pw"),
        "a typed password reached the log"
    );
    let silent = request_with_code(&recs, "SILENT-RAN");
    assert_eq!(silent["content"]["silent"], true);
    assert_eq!(silent["content"]["store_history"], false);
    assert!(children(&recs, silent, "execute_input").is_empty());
    request_with_code(&recs, "%logstop");
    request_with_code(&recs, "AFTER-LOGSTOP");
    request_with_code(&recs, "DELETE FROM history");
    let comm = kernel_messages(&recs, "comm_msg")
        .into_iter()
        .find(|r| r["direction"] == "to_kernel")
        .unwrap();
    assert!(
        comm["content"]["data"]["code"]
            .as_str()
            .unwrap()
            .contains("VIA-COMM")
    );
    assert_eq!(
        children(&recs, comm, "stream")[0]["content"]["text"],
        "COMM-RAN\n"
    );
    assert!(
        kernel_messages(&recs, "comm_open")
            .iter()
            .any(|r| r["direction"] == "to_client"
                && r["content"]["target_name"] == "jupyter.widget")
    );
    assert!(
        kernel_messages(&recs, "comm_close")
            .iter()
            .any(|r| r["direction"] == "to_client")
    );
    let v1 = request_with_code(&recs, "over v1");
    assert_eq!(v1["framing"], "v1");
    assert_eq!(children(&recs, v1, "stream")[0]["framing"], "v1");
    // HTTP and websocket bookkeeping.
    assert!(
        recs.iter()
            .any(|r| r["type"] == "http" && r["status"] == 401 && r["user"].is_null())
    );
    assert!(recs.iter().any(|r| r["type"] == "http"
        && r["method"] == "POST"
        && r["path"] == "/api/sessions"
        && r["user"] == "alice"));
    let opens: Vec<&Value> = recs.iter().filter(|r| r["type"] == "ws_open").collect();
    assert_eq!(opens.len(), 2);
    assert_eq!(opens[1]["subprotocol"], V1);
    assert_eq!(recs.iter().filter(|r| r["type"] == "ws_close").count(), 2);
    assert_eq!(
        recs.last().unwrap()["type"],
        "segment_end",
        "SIGTERM closes the log"
    );

    // --- verify-log passes, against the gateway's key too.
    let v = common::json([
        "verify-log",
        "--json",
        "--key",
        &pubkey,
        log_dir.to_str().unwrap(),
    ]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["records"].as_u64().unwrap() as usize, recs.len());
    assert!(v["checkpoints"].as_u64().unwrap() >= 5);

    // --- Editing, deleting or reordering one record fails verification at that record.
    let seg = std::fs::read_dir(&log_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let lines: Vec<String> = std::fs::read_to_string(&seg)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let hello = lines.iter().position(|l| l.contains("hello 42")).unwrap();
    let attempts: Vec<(&str, Vec<String>)> = vec![
        ("edited", {
            let mut l = lines.clone();
            l[hello] = l[hello].replace("hello 42", "hello 43");
            l
        }),
        ("deleted", {
            let mut l = lines.clone();
            l.remove(hello);
            l
        }),
        ("reordered", {
            let mut l = lines.clone();
            l.swap(hello, hello + 1);
            l
        }),
    ];
    for (what, tampered) in attempts {
        let copy = dir.path().join(format!("tampered-{what}"));
        copy_dir(&log_dir, &copy);
        std::fs::write(
            copy.join(seg.file_name().unwrap()),
            tampered.join("\n") + "\n",
        )
        .unwrap();
        let out = common::nbtrail(["verify-log", "--json", copy.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{what} log must fail");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(
            v["problem"]["line"].as_u64().unwrap() as usize,
            hello + 1,
            "{what}: {v}"
        );
        let human = common::nbtrail(["verify-log", copy.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&human.stdout).to_string()
            + &String::from_utf8_lossy(&human.stderr);
        assert!(text.contains(&format!(":{}:", hello + 1)), "{what}: {text}");
    }

    check_ingest(&log_dir, &recs, &kernel_id, dir.path());
}

/// The capture log is an input shape for `nbtrail ingest`: sessions per kernel with outputs on cells.
fn check_ingest(log_dir: &Path, recs: &[Value], kernel_id: &str, dir: &Path) {
    let case = dir.join("case");
    let report = common::json([
        "ingest",
        "--case",
        case.to_str().unwrap(),
        log_dir.to_str().unwrap(),
    ]);
    assert_eq!(report["errors"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["lines"].as_u64().unwrap() as usize, recs.len());
    assert_eq!(report["events"].as_u64().unwrap() as usize, recs.len());
    // Re-ingesting adds nothing.
    let again = common::json([
        "ingest",
        "--case",
        case.to_str().unwrap(),
        log_dir.to_str().unwrap(),
    ]);
    assert_eq!(again["events"], 0);
    let sessions = common::json(["sessions", "--case", case.to_str().unwrap(), "--json"]);
    let s = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["notebook_path"] == "analysis/audit.ipynb")
        .unwrap_or_else(|| panic!("no session for the notebook: {sessions}"));
    assert_eq!(s["users"], json!(["alice"]));
    assert_eq!(s["cluster_id"], kernel_id);
    let replay = common::json([
        "replay",
        "--case",
        case.to_str().unwrap(),
        s["id"].as_str().unwrap(),
        "--json",
    ]);
    let cells = replay["cells"].as_array().unwrap();
    let hello = cells
        .iter()
        .find(|c| c["code"] == "print('hello', x)")
        .unwrap_or_else(|| panic!("{replay}"));
    assert_eq!(hello["user"], "alice");
    assert_eq!(hello["status"], "finished");
    assert_eq!(hello["outputs"][0]["output_type"], "stream");
    assert_eq!(hello["outputs"][0]["text"], "hello 42\n");
    let err = cells.iter().find(|c| c["code"] == "1/0").unwrap();
    assert_eq!(err["status"], "failed");
    assert_eq!(err["outputs"][0]["output_type"], "error");
    let silent = cells
        .iter()
        .find(|c| c["code"] == "silent_marker = 'SILENT-RAN'")
        .unwrap();
    assert_eq!(silent["silent"], true);
    // Search over outputs finds the cell that printed it.
    let hits = common::json([
        "search",
        "--case",
        case.to_str().unwrap(),
        "--json",
        "output:\"hello 42\"",
    ]);
    assert_eq!(hits["total"], 1, "{hits}");
    assert_eq!(hits["hits"][0]["session_id"], s["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_log_refuses_execution_and_the_kernel_never_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let as_nobody = nix_is_root();
    // The gateway runs as another account than the kernel, as in a real deployment.
    let log_dir = dir.path().join("capture");
    std::fs::create_dir(&log_dir).unwrap();
    if as_nobody {
        for p in [dir.path(), log_dir.as_path()] {
            std::process::Command::new("chmod")
                .arg("755")
                .arg(p)
                .status()
                .unwrap();
        }
        std::process::Command::new("chown")
            .args(["65534:65534"])
            .arg(&log_dir)
            .status()
            .unwrap();
    }
    let jupyter = Jupyter::start(dir.path());
    let gw = Gateway::start(
        jupyter.port,
        &log_dir,
        &["--user-header", "X-Auth-User"],
        as_nobody,
    );
    let kernel_id = start_session(&gw.addr, "refuse.ipynb", "bob");
    let h = auth("bob");
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    assert_eq!(
        k.execute("print('before')", false, &[]).await.stdout(),
        "before\n"
    );

    let set_writable = |w: bool| {
        let mode = if w { "u+w" } else { "a-w" };
        let st = std::process::Command::new("chmod")
            .args(["-R", mode])
            .arg(&log_dir)
            .status()
            .unwrap();
        assert!(st.success());
    };
    set_writable(false);
    let marker = dir.path().join("kernel-ran-it");
    let ex = k
        .execute(
            &format!("open({:?}, 'w').write('ran')", marker.display().to_string()),
            false,
            &[],
        )
        .await;
    let reply = &ex.of_type("execute_reply")[0];
    assert_eq!(reply["content"]["status"], "error");
    assert_eq!(reply["content"]["ename"], "CaptureRefused");
    assert!(
        reply["content"]["evalue"]
            .as_str()
            .unwrap()
            .contains("capture log cannot be written")
    );
    assert_eq!(ex.of_type("error")[0]["content"]["ename"], "CaptureRefused");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!marker.exists(), "the refused execution reached the kernel");

    // Writable again: the gateway recovers in a new segment and the chain still verifies.
    set_writable(true);
    assert_eq!(
        k.execute("print('after')", false, &[]).await.stdout(),
        "after\n"
    );
    assert!(!marker.exists());
    k.close().await;
    gw.stop();
    let recs = records(&log_dir);
    assert!(
        recs.iter()
            .all(|r| !r.to_string().contains("kernel-ran-it")),
        "the refused request is not in the chain"
    );
    assert!(
        recs.iter()
            .any(|r| r["type"] == "segment_start" && r["reason"] == "recover")
    );
    let v = common::json(["verify-log", "--json", log_dir.to_str().unwrap()]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["notes"].to_string().contains("after a write failure"),
        "{v}"
    );
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Issue 15, "code cut off": a cell of more than 1 MiB of comment followed by a payload ran the payload
/// while the record (and so replay, search and the analyzer) kept only the comment. Now the code is
/// recorded whole and found by `nbtrail search`. "Undecodable but forwarded": `NaN` in a message (Python's
/// `json` accepts it, serde_json did not) was logged as undecodable yet forwarded and run; now it decodes,
/// and is recorded as the cell it is. A frame above `--max-message-bytes` is refused whole: the kernel
/// never runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_megabyte_comment_then_payload_nan_metadata_and_oversize_frames() {
    let Rig {
        dir,
        log_dir,
        jupyter,
        gw,
        kernel_id,
        h,
    } = Rig::start(
        "hostile.ipynb",
        "carol",
        &["--max-message-bytes", "3000000"],
    );
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    let path = |name: &str| dir.path().join(name).display().to_string();

    // 1.1 MiB of comment, then a payload: runs, and is recorded whole.
    let padding = "# nothing to see here\n".repeat(1_100_000 / 22 + 1);
    let payload = format!(
        "open({:?}, 'w').write('ran')  # payload_after_padding",
        path("m1")
    );
    let code = format!("{padding}{payload}");
    let ex = k.execute(&code, false, &[]).await;
    assert_eq!(ex.of_type("execute_reply")[0]["content"]["status"], "ok");
    assert!(dir.path().join("m1").exists());

    // NaN and 1e400 in the metadata: decoded, recorded as a cell, run.
    let mut header = k.new_header("execute_request");
    let id = header["msg_id"].as_str().unwrap().to_string();
    header["date"] = json!("2026-11-29T00:00:00.000Z");
    let nan_code = format!(
        "open({:?}, 'w').write('ran')  # nan_metadata_cell",
        path("m2")
    );
    let frame = format!(
        r#"{{"channel": "shell", "header": {header}, "parent_header": {{}}, "metadata": {{"x": NaN, "y": 1e400}}, "content": {{"code": {code}, "silent": false, "store_history": true, "user_expressions": {{}}, "allow_stdin": false, "stop_on_error": true}}, "buffers": []}}"#,
        code = serde_json::to_string(&nan_code).unwrap()
    );
    k.send_raw(frame).await;
    let ex = k.collect(&id, &[], true).await;
    assert_eq!(ex.of_type("execute_reply")[0]["content"]["status"], "ok");
    assert!(dir.path().join("m2").exists());

    // A frame larger than --max-message-bytes: refused whole, never run, the notebook is told why.
    let big = format!(
        "{}open({:?}, 'w').write('ran')",
        "# x\n".repeat(1_000_000),
        path("m3")
    );
    let ex = k.execute(&big, false, &[]).await;
    let reply = &ex.of_type("execute_reply")[0];
    assert_eq!(reply["content"]["status"], "error");
    assert!(
        reply["content"]["evalue"]
            .as_str()
            .unwrap()
            .contains("max-message-bytes"),
        "{reply}"
    );
    k.close().await;
    gw.stop();
    drop(jupyter);
    assert!(
        !dir.path().join("m3").exists(),
        "the refused frame reached the kernel"
    );

    let recs = records(&log_dir);
    let whole = request_with_code(&recs, "payload_after_padding");
    assert_eq!(whole["content"]["code"].as_str().unwrap().len(), code.len());
    assert!(
        whole
            .get("truncated")
            .is_none_or(|t| t.as_array().is_some_and(Vec::is_empty))
    );
    let nan = request_with_code(&recs, "nan_metadata_cell");
    assert_eq!(nan["metadata"]["x"], "NaN");
    let refused: Vec<&Value> = recs
        .iter()
        .filter(|r| {
            r["refused"]
                .as_str()
                .is_some_and(|s| s.contains("max-message-bytes"))
        })
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0]["frame_bytes"].as_u64().unwrap() > 3_000_000);

    // Ingested, both cells are searchable by the code after the padding.
    let case = dir.path().join("case");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nbtrail"))
        .args([
            "ingest",
            "--case",
            case.to_str().unwrap(),
            log_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in ["payload_after_padding", "nan_metadata_cell"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nbtrail"))
            .args([
                "search",
                "--case",
                case.to_str().unwrap(),
                "--json",
                "--",
                needle,
            ])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["total"].as_u64().unwrap() >= 1, "{needle}: {v}");
    }
}

/// Ingests a capture log into `dir/case`, analyzes it, and returns the case path and the replayed
/// cells of the kernel's session.
fn ingest_and_replay(
    log_dir: &Path,
    dir: &Path,
    kernel_id: &str,
) -> (std::path::PathBuf, Vec<Value>) {
    let case = dir.join("case");
    let report = common::json([
        "ingest",
        "--case",
        case.to_str().unwrap(),
        log_dir.to_str().unwrap(),
    ]);
    assert_eq!(report["errors"].as_array().unwrap().len(), 0, "{report}");
    // Exit status 1 means "findings reported".
    let out = common::nbtrail(["analyze", "--case", case.to_str().unwrap()]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sessions = common::json(["sessions", "--case", case.to_str().unwrap(), "--json"]);
    let s = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["cluster_id"] == kernel_id)
        .unwrap_or_else(|| panic!("no session for the kernel: {sessions}"))
        .clone();
    let replay = common::json([
        "replay",
        "--case",
        case.to_str().unwrap(),
        s["id"].as_str().unwrap(),
        "--json",
    ]);
    (case, replay["cells"].as_array().unwrap().clone())
}

/// Asserts `needle` is found by `code:` search, in a cell of kind `kind` that the replay shows.
fn assert_reviewable(case: &Path, cells: &[Value], needle: &str, kind: &str) -> Value {
    let hits = common::search(case, &format!("code:{needle}"));
    assert!(
        hits["total"].as_u64().unwrap() >= 1,
        "code:{needle}: {hits}"
    );
    let cell = cells
        .iter()
        .find(|c| c["code"].as_str().unwrap_or("").contains(needle))
        .unwrap_or_else(|| panic!("no replayed cell with {needle}: {cells:?}"))
        .clone();
    assert_eq!(cell["kind"], kind, "{cell}");
    assert_eq!(cell["user"], "dora", "{cell}");
    cell
}

/// Code smuggled into `user_expressions` of an empty, silent `execute_request`: ipykernel evaluates it.
/// It must be in the log, a cell of kind `user_expressions` in replay, found by `code:` search, and analyzed
/// with the cells before it (the secret read in cell 1 printed by the expression: NBT001).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_code_in_user_expressions() {
    let Rig {
        dir,
        log_dir,
        jupyter,
        gw,
        kernel_id,
        h,
    } = Rig::start("ue.ipynb", "dora", &[]);
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    let marker = dir.path().join("ue-marker");
    k.execute(
        "import os\napi_key = os.environ.get('API_TOKEN', 'tok')",
        false,
        &[],
    )
    .await;
    let expr = format!(
        "print(api_key) or open({:?}, 'w').write('ran_user_expression')",
        marker.display().to_string()
    );
    let content = json!({"code": "", "silent": true, "store_history": false,
        "user_expressions": {"x": expr}, "allow_stdin": false, "stop_on_error": false});
    let id = k.send("shell", "execute_request", content, json!({})).await;
    let ex = k.collect(&id, &[], true).await;
    assert_eq!(
        ex.of_type("execute_reply")[0]["content"]["user_expressions"]["x"]["status"],
        "ok"
    );
    k.close().await;
    gw.stop();
    drop(jupyter);
    assert!(marker.exists(), "the kernel evaluated the user expression");

    let (case, cells) = ingest_and_replay(&log_dir, dir.path(), &kernel_id);
    let cell = assert_reviewable(&case, &cells, "ran_user_expression", "user_expressions");
    assert_eq!(cell["silent"], true);
    assert!(
        cell["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["output_type"] == "user_expressions"),
        "the expression's value is shown: {cell}"
    );
    let findings = common::json(["findings", "--case", case.to_str().unwrap(), "--json"]);
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "NBT001" && f["cell"]["event_id"] == cell["event_id"]),
        "the secret printed by the user expression is a finding: {findings}"
    );
}

/// Code in comm data: a comm target registered by an earlier (recorded) cell executes what a `comm_open`
/// carries. The comm message is a cell of kind `comm`, found by `code:` search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_code_in_comm_data() {
    let Rig {
        dir,
        log_dir,
        jupyter,
        gw,
        kernel_id,
        h,
    } = Rig::start("comm.ipynb", "dora", &[]);
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    let marker = dir.path().join("comm-marker");
    let ex = k
        .execute(
            "get_ipython().kernel.comm_manager.register_target('runner', lambda comm, msg: exec(msg['content']['data']['code']))",
            false,
            &[],
        )
        .await;
    assert_eq!(
        ex.of_type("execute_reply")[0]["content"]["status"],
        "ok",
        "{:?}",
        ex.messages
    );
    let code = format!(
        "open({:?}, 'w').write('ran_comm_payload')",
        marker.display().to_string()
    );
    let id = k
        .send(
            "shell",
            "comm_open",
            json!({"comm_id": "c0ffee", "target_name": "runner", "data": {"code": code}}),
            json!({}),
        )
        .await;
    k.collect(&id, &[], false).await;
    for _ in 0..100 {
        if marker.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    k.close().await;
    gw.stop();
    drop(jupyter);
    assert!(marker.exists(), "the comm target ran the comm data");

    let (case, cells) = ingest_and_replay(&log_dir, dir.path(), &kernel_id);
    assert_reviewable(&case, &cells, "ran_comm_payload", "comm");
}

/// Code in a debugger request: `evaluate` (and `setVariable`, breakpoint conditions) are expressions the
/// kernel's debugger evaluates. Whether or not this kernel's debugger ran it, the request is in the log, a
/// cell of kind `debugger`, found by `code:` search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_code_in_debugger_evaluate() {
    let Rig {
        dir,
        log_dir,
        jupyter,
        gw,
        kernel_id,
        h,
    } = Rig::start("dbg.ipynb", "dora", &[]);
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    k.execute("x = 1", false, &[]).await;
    let marker = dir.path().join("dbg-marker");
    for (command, arguments) in [
        (
            "initialize",
            json!({"clientID": "test", "adapterID": "python", "pathFormat": "path",
            "linesStartAt1": true, "columnsStartAt1": true, "supportsVariableType": true}),
        ),
        ("attach", json!({})),
        (
            "evaluate",
            json!({"expression": format!("open({:?}, 'w').write('ran_debugger_eval')", marker.display().to_string()), "context": "repl"}),
        ),
    ] {
        let id = k
            .send(
                "control",
                "debug_request",
                json!({"seq": 1, "type": "request", "command": command, "arguments": arguments}),
                json!({}),
            )
            .await;
        k.collect(&id, &[], true).await;
    }
    k.close().await;
    gw.stop();
    drop(jupyter);
    let (case, cells) = ingest_and_replay(&log_dir, dir.path(), &kernel_id);
    assert_reviewable(&case, &cells, "ran_debugger_eval", "debugger");
    // The debugger's own handshake evaluates nothing and is not a cell.
    assert!(
        !cells
            .iter()
            .any(|c| c["code"].as_str().unwrap_or("").contains("clientID"))
    );
}

/// A kernel on the gateway's host sends the identity header itself (it can reach the gateway's port and
/// may know the Jupyter token): without the trusted proxy's secret the gateway refuses it, so no session is
/// ever recorded under the forged name and the forged request's code never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_forged_identity_header_from_the_kernel_host() {
    let Rig {
        dir: _dir,
        log_dir,
        jupyter,
        gw,
        kernel_id,
        h,
    } = Rig::start("forge.ipynb", "erin", &[]);
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    // From inside the kernel: create a session as "ceo", twice (one header, then two copies of it).
    let code = format!(
        r#"import json, urllib.request, urllib.error
statuses = []
for headers in ([("X-Auth-User", "ceo")], [("X-Auth-User", "ceo"), ("X-Auth-User", "erin")]):
    req = urllib.request.Request("http://{gw}/api/sessions", method="POST",
        data=json.dumps({{"path": "ceo.ipynb", "type": "notebook", "kernel": {{"name": "python3"}}}}).encode())
    req.add_header("Authorization", "token {token}")
    req.add_header("Content-Type", "application/json")
    for k, v in headers:
        req.add_header(k, v) if k not in req.headers else req.headers.update({{k: req.headers[k] + ", " + v}})
    try:
        statuses.append(urllib.request.urlopen(req).status)
    except urllib.error.HTTPError as e:
        statuses.append(e.code)
print("forged:", statuses)"#,
        gw = gw.addr,
        token = JUPYTER_TOKEN
    );
    let ex = k.execute(&code, false, &[]).await;
    assert_eq!(
        ex.stdout().trim(),
        "forged: [401, 401]",
        "{:?}",
        ex.messages
    );
    // The same from a client that knows the secret but sends the header twice: refused too.
    let mut twice = as_refs(&h);
    twice.push(("X-Auth-User", "ceo"));
    let (status, body) = http(&gw.addr, "GET", "/api/sessions", &twice, None).unwrap();
    assert_eq!(status, 401, "{body}");
    k.close().await;
    gw.stop();
    let (status, body) = http(
        &format!("127.0.0.1:{}", jupyter.port),
        "GET",
        "/api/sessions",
        &[("Authorization", &format!("token {JUPYTER_TOKEN}"))],
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        !body.contains("ceo.ipynb"),
        "a forged request reached the server: {body}"
    );
    drop(jupyter);
    let recs = records(&log_dir);
    assert!(
        recs.iter().all(|r| r["user"] != "ceo"),
        "a record carries the forged user"
    );
    let refused: Vec<&Value> = recs
        .iter()
        .filter(|r| r["type"] == "http" && r["status"] == 401)
        .collect();
    assert_eq!(refused.len(), 3, "each forged request is logged as refused");
    assert!(
        refused
            .iter()
            .all(|r| r["refused"].as_str().unwrap().contains("X-Auth-User")
                || r["refused"].as_str().unwrap().contains("x-auth-user"))
    );
}

/// REST execution endpoints (as extensions such as jupyter_server_nbmodel add) would run code the gateway
/// does not decode: refused before the server sees them, and the refusal is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_rest_execute_call_is_refused() {
    let Rig {
        dir,
        log_dir,
        jupyter,
        gw,
        kernel_id,
        h,
    } = Rig::start("rest.ipynb", "erin", &[]);
    let mut headers = as_refs(&h);
    headers.push(("Content-Type", "application/json"));
    let marker = dir.path().join("rest-marker");
    let code = format!("open({:?}, 'w').write('ran')", marker.display().to_string());
    for path in [
        format!("/api/kernels/{kernel_id}/execute"),
        format!("/api/kernels/{kernel_id}/execute_cell"),
        "/api/nbmodel/execute".to_string(),
    ] {
        let (status, body) = http(
            &gw.addr,
            "POST",
            &path,
            &headers,
            Some(&json!({"code": code})),
        )
        .unwrap();
        assert_eq!(status, 403, "{path}: {body}");
    }
    gw.stop();
    drop(jupyter);
    assert!(!marker.exists());
    let recs = records(&log_dir);
    let refused = recs
        .iter()
        .filter(|r| r["type"] == "http" && r["status"] == 403 && r["method"] == "POST")
        .count();
    assert_eq!(refused, 3);
}

/// A page reload opens a new websocket to the same kernel, whose variables live on: the capture session
/// continues across it (replay shows the reconnect; the analyzer follows a secret read before the reload to
/// its leak after it). A kernel restart ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_page_reload_continues_the_kernel_session_and_a_restart_ends_it() {
    let Rig {
        dir,
        log_dir,
        jupyter,
        gw,
        kernel_id,
        h,
    } = Rig::start("reload.ipynb", "fay", &[]);
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    k.execute(
        "import os\ntoken = os.environ.get('API_TOKEN', 'tok')",
        false,
        &[],
    )
    .await;
    k.close().await;
    // The reload.
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), true).await;
    let ex = k.execute("print('after reload', token)", false, &[]).await;
    assert_eq!(ex.stdout(), "after reload tok\n");
    k.close().await;
    // The restart (as JupyterLab does it), then a cell in the restarted kernel.
    let (status, body) = http(
        &gw.addr,
        "POST",
        &format!("/api/kernels/{kernel_id}/restart"),
        &as_refs(&h),
        Some(&json!({})),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    k.execute("print('after restart')", false, &[]).await;
    k.close().await;
    let start = std::time::Instant::now();
    while records(&log_dir)
        .iter()
        .filter(|r| r["type"] == "ws_close")
        .count()
        < 3
        && start.elapsed() < std::time::Duration::from_secs(10)
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    gw.stop();
    drop(jupyter);

    let (case, _) = ingest_and_replay(&log_dir, dir.path(), &kernel_id);
    let sessions = common::json(["sessions", "--case", case.to_str().unwrap(), "--json"]);
    let mut mine: Vec<&Value> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cluster_id"] == kernel_id)
        .collect();
    mine.sort_by_key(|s| s["start"].as_str().unwrap().to_string());
    assert_eq!(mine.len(), 2, "{sessions}");
    assert_eq!(mine[0]["cells"], 2);
    assert_eq!(mine[0]["end_reason"], "detach");
    assert_eq!(mine[1]["cells"], 1);
    let replay = common::json([
        "replay",
        "--case",
        case.to_str().unwrap(),
        mine[0]["id"].as_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        replay["attachments"].as_array().unwrap().len(),
        2,
        "the first connection and the reconnect: {replay}"
    );
    let text = common::nbtrail([
        "replay",
        "--case",
        case.to_str().unwrap(),
        mine[0]["id"].as_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("reconnected 1 time(s)"));
    let findings = common::json(["findings", "--case", case.to_str().unwrap(), "--json"]);
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "NBT001" && f["session_id"] == mine[0]["id"]),
        "the secret read before the reload and printed after it: {findings}"
    );
}

/// One user flooding the log (a cell printing megabytes) is stopped by the per-user quota with a clear
/// refusal: the flood is withheld and recorded by size and hash, the next cell is refused and never runs,
/// and the notebook says why; another user is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_one_user_flooding_the_log_is_refused_by_quota() {
    let Rig {
        dir,
        log_dir,
        jupyter,
        gw,
        kernel_id,
        h,
    } = Rig::start("flood.ipynb", "gus", &["--quota-bytes-per-hour", "400000"]);
    let mut k = KernelClient::connect(&gw.addr, &kernel_id, &as_refs(&h), false).await;
    let ex = k.execute("print('x' * 1_000_000)", false, &[]).await;
    assert!(
        ex.stdout().contains("quota"),
        "the flood is withheld with the reason: {:?}",
        ex.stdout().get(..200)
    );
    let marker = dir.path().join("quota-marker");
    let ex = k
        .execute(
            &format!("open({:?}, 'w').write('ran')", marker.display().to_string()),
            false,
            &[],
        )
        .await;
    let reply = &ex.of_type("execute_reply")[0];
    assert_eq!(reply["content"]["status"], "error");
    assert!(
        reply["content"]["evalue"]
            .as_str()
            .unwrap()
            .contains("quota"),
        "{reply}"
    );
    k.close().await;
    // Another user's work goes on.
    let other = start_session(&gw.addr, "other.ipynb", "hana");
    let h2 = auth("hana");
    let mut k2 = KernelClient::connect(&gw.addr, &other, &as_refs(&h2), false).await;
    assert_eq!(
        k2.execute("print('fine')", false, &[]).await.stdout(),
        "fine\n"
    );
    k2.close().await;
    gw.stop();
    drop(jupyter);
    assert!(!marker.exists(), "a refused cell ran");
    let recs = records(&log_dir);
    let withheld: Vec<&Value> = recs
        .iter()
        .filter(|r| {
            r["refused"]
                .as_str()
                .is_some_and(|s| s.starts_with("output withheld: quota"))
        })
        .collect();
    assert!(!withheld.is_empty());
    assert!(withheld.iter().all(|r| r["frame_sha256"].is_string()));
    let total: usize = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len() as usize)
        .sum();
    assert!(
        total < 400_000,
        "the flood did not reach the log: {total} bytes"
    );
    // Ingested, the refused cell is not a cell that ran.
    let (_, cells) = ingest_and_replay(&log_dir, dir.path(), &kernel_id);
    assert_eq!(cells.len(), 1, "{cells:?}");
    assert_eq!(cells[0]["code"], "print('x' * 1_000_000)");
}
