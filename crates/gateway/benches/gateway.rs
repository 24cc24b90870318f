//! Gateway overhead, measured against the same Jupyter server in one run: request latency and output
//! throughput with the browser connected directly versus through `nbtrail-gateway` (every message
//! recorded and fsynced before it is forwarded).
//!
//! `cargo bench -p nbtrail-gateway --bench gateway`. Needs the Jupyter venv that the tests create
//! (target/jupyter-venv). Two kernels, one per path, so neither sees the other's broadcast output; rounds
//! alternate between the paths so drift hits both alike. Then [`users`] (50) connections at once, each to its
//! own kernel, per path (alternating again): what many notebooks executing at the same time cost the
//! gateway's one log writer, and the gateway's peak memory (VmHWM) over the whole run.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test
#![allow(missing_docs)]

#[path = "../../../tests/gateway_support/mod.rs"]
mod support;

use serde_json::json;
use std::time::Instant;
use support::*;

const ROUNDS: usize = 5;
const REQUESTS_PER_ROUND: usize = 100;
const DISPLAYS: usize = 3000;
/// Concurrent connections (each its own kernel) in the many-users measurement (`NBTRAIL_BENCH_USERS`,
/// default 50).
fn users() -> usize {
    std::env::var("NBTRAIL_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}
const REQUESTS_PER_USER: usize = 20;
const CONCURRENT_ROUNDS: usize = 2;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn new_kernel(addr: &str) -> String {
    let (status, body) = http(
        addr,
        "POST",
        "/api/kernels",
        &[
            ("Authorization", &format!("token {JUPYTER_TOKEN}")),
            ("Content-Type", "application/json"),
        ],
        Some(&json!({"name": "python3"})),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A connection to each of `kernels` through `addr`, warmed up. (Connections stay open across rounds:
/// Jupyter does not take a second connection with the same session id to a kernel well.)
async fn connect_all(addr: &str, kernels: &[String]) -> Vec<KernelClient> {
    let auth = format!("token {JUPYTER_TOKEN}");
    let mut clients = Vec::new();
    for k in kernels {
        let mut c = KernelClient::connect(addr, k, &[("Authorization", &auth)], false).await;
        for _ in 0..5 {
            c.execute("pass", false, &[]).await;
        }
        clients.push(c);
    }
    clients
}

/// Every client executing at once, `REQUESTS_PER_USER` each: the clients back, executes per second over
/// the whole round, and every round trip in ms.
async fn concurrent_round(clients: Vec<KernelClient>) -> (Vec<KernelClient>, f64, Vec<f64>) {
    let n = clients.len();
    let t = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(REQUESTS_PER_USER);
                for _ in 0..REQUESTS_PER_USER {
                    let t = Instant::now();
                    let ex = c.execute("pass", false, &[]).await;
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    assert!(ex.messages.len() >= 4);
                }
                (c, lat)
            })
        })
        .collect();
    let (mut back, mut all) = (Vec::new(), Vec::new());
    for task in tasks {
        let (c, lat) = task.await.unwrap();
        all.extend(lat);
        back.push(c);
    }
    let rate = (n * REQUESTS_PER_USER) as f64 / t.elapsed().as_secs_f64();
    (back, rate, all)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(workspace_root().join("target")).unwrap();
        let log_dir = dir.path().join("capture");
        std::fs::create_dir(&log_dir).unwrap();
        let jupyter = Jupyter::start(dir.path());
        let gw = Gateway::start(jupyter.port, &log_dir, &["--users", &users_file(dir.path())], false);
        let direct_addr = format!("127.0.0.1:{}", jupyter.port);
        let headers = [("Authorization", format!("token {JUPYTER_TOKEN}"))];
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let k_direct = new_kernel(&direct_addr);
        let k_via = new_kernel(&gw.addr);
        let mut direct = KernelClient::connect(&direct_addr, &k_direct, &h, false).await;
        let mut via = KernelClient::connect(&gw.addr, &k_via, &h, false).await;
        for _ in 0..20 {
            direct.execute("pass", false, &[]).await;
            via.execute("pass", false, &[]).await;
        }
        let (mut lat_direct, mut lat_via) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (client, out) in [(&mut direct, &mut lat_direct), (&mut via, &mut lat_via)] {
                for _ in 0..REQUESTS_PER_ROUND {
                    let t = Instant::now();
                    let ex = client.execute("pass", false, &[]).await;
                    out.push(t.elapsed().as_secs_f64() * 1000.0);
                    assert!(ex.messages.len() >= 4);
                }
            }
        }
        let code = format!("from IPython.display import display\nfor i in range({DISPLAYS}):\n    display(i)");
        let (mut tp_direct, mut tp_via) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            for (client, out) in [(&mut direct, &mut tp_direct), (&mut via, &mut tp_via)] {
                let t = Instant::now();
                let ex = client.execute(&code, false, &[]).await;
                let secs = t.elapsed().as_secs_f64();
                assert_eq!(ex.of_type("display_data").len(), DISPLAYS);
                out.push(ex.messages.len() as f64 / secs);
            }
        }
        direct.close().await;
        via.close().await;

        // Many notebooks at once: USERS kernels per path, every connection executing concurrently.
        #[allow(non_snake_case)]
        let USERS = users();
        let many_direct: Vec<String> = (0..USERS).map(|_| new_kernel(&direct_addr)).collect();
        let many_via: Vec<String> = (0..USERS).map(|_| new_kernel(&gw.addr)).collect();
        let mut clients_direct = connect_all(&direct_addr, &many_direct).await;
        let mut clients_via = connect_all(&gw.addr, &many_via).await;
        let (mut c_rate_direct, mut c_rate_via) = (Vec::new(), Vec::new());
        let (mut c_lat_direct, mut c_lat_via) = (Vec::new(), Vec::new());
        for _ in 0..CONCURRENT_ROUNDS {
            let (back, r, l) = concurrent_round(clients_direct).await;
            clients_direct = back;
            c_rate_direct.push(r);
            c_lat_direct.extend(l);
            let (back, r, l) = concurrent_round(clients_via).await;
            clients_via = back;
            c_rate_via.push(r);
            c_lat_via.extend(l);
        }
        for c in clients_direct.into_iter().chain(clients_via) {
            c.close().await;
        }
        let rss = |what: &str| {
            std::fs::read_to_string(format!("/proc/{}/status", gw.proc.0.id()))
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find(|l| l.starts_with(what))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        let (peak_kb, now_kb) = (rss("VmHWM:"), rss("VmRSS:"));
        gw.stop();
        let records = records(&log_dir).len();
        let bytes: u64 = std::fs::read_dir(&log_dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();

        // One execute round trip is 5 messages: the request, busy, execute_input, the reply, idle.
        let p = |v: &mut Vec<f64>, q| percentile(v, q);
        let (d50, d95, v50, v95) = (
            p(&mut lat_direct, 0.5),
            p(&mut lat_direct, 0.95),
            p(&mut lat_via, 0.5),
            p(&mut lat_via, 0.95),
        );
        let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        println!("gateway overhead ({} requests per path, {} rounds; {DISPLAYS}-output cell x3)", ROUNDS * REQUESTS_PER_ROUND, ROUNDS);
        println!("  execute round trip p50: direct {d50:.2} ms, via gateway {v50:.2} ms (+{:.2} ms, x{:.2})", v50 - d50, v50 / d50);
        println!("  execute round trip p95: direct {d95:.2} ms, via gateway {v95:.2} ms (+{:.2} ms, x{:.2})", v95 - d95, v95 / d95);
        println!("  added latency per message (p50 / 5 messages): {:.3} ms", (v50 - d50) / 5.0);
        println!(
            "  output throughput (best of 3): direct {:.0} msg/s, via gateway {:.0} msg/s (x{:.2})",
            best(&tp_direct),
            best(&tp_via),
            best(&tp_via) / best(&tp_direct)
        );
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (cd50, cd95, cv50, cv95) = (
            p(&mut c_lat_direct, 0.5),
            p(&mut c_lat_direct, 0.95),
            p(&mut c_lat_via, 0.5),
            p(&mut c_lat_via, 0.95),
        );
        println!(
            "{USERS} connections at once, each its own kernel ({REQUESTS_PER_USER} executes each, {CONCURRENT_ROUNDS} rounds per path):"
        );
        println!(
            "  executes/s (mean of rounds): direct {:.0}, via gateway {:.0} (x{:.2})",
            mean(&c_rate_direct),
            mean(&c_rate_via),
            mean(&c_rate_via) / mean(&c_rate_direct)
        );
        println!("  round trip p50: direct {cd50:.2} ms, via gateway {cv50:.2} ms (x{:.2})", cv50 / cd50);
        println!("  round trip p95: direct {cd95:.2} ms, via gateway {cv95:.2} ms (x{:.2})", cv95 / cd95);
        println!("  capture log: {records} records, {:.1} MB", bytes as f64 / 1e6);
        println!(
            "  gateway memory: peak RSS (VmHWM) {:.1} MB, RSS at the end {:.1} MB",
            peak_kb as f64 / 1024.0,
            now_kb as f64 / 1024.0
        );
    });
}

fn users_file(dir: &std::path::Path) -> String {
    let p = dir.join("users");
    std::fs::write(&p, format!("bench {JUPYTER_TOKEN}\n")).unwrap();
    p.display().to_string()
}
