//! Search latency on a case: a fixed mix of auditor queries, each run with facets, histogram and
//! snippets (20 hits), after warm-up. Prints p50/p95/p99 per query and over the whole mix.
//!
//! `NBTRAIL_BENCH_CASE=bench-data/bench.case cargo bench -p nbtrail-search --bench latency`
//! (scripts/bench-search.sh builds the 1M-event case and runs this next to `rg` on the raw file).

use nbtrail_search::{SearchIndex, SearchRequest, Sort};
use nbtrail_store::Case;
use std::time::Instant;

/// (query, sort). The mix: broad and narrow filters, phrases, identifiers, wildcards, booleans, time.
pub const QUERIES: &[(&str, Sort)] = &[
    ("user:alice", Sort::Newest),
    ("table:prod.crm.customers", Sort::Newest),
    ("spark.read.table", Sort::Newest),
    ("\"GROUP BY region\"", Sort::Newest),
    ("action:getTable user:bob", Sort::Newest),
    ("time:[2030-01-01 TO 2030-01-31]", Sort::Oldest),
    (
        "user:carol time:[2030-01-01T14:00 TO 2030-01-01T15:00]",
        Sort::Newest,
    ),
    ("saveAsTable OR insertInto", Sort::Newest),
    ("service:notebook -action:runCommand", Sort::Newest),
    ("prod.sales.orders lang:sql", Sort::Relevance),
    ("custom*", Sort::Newest),
    ("status:failed", Sort::Newest),
    ("toPandas", Sort::Relevance),
];

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let dir =
        std::env::var("NBTRAIL_BENCH_CASE").unwrap_or_else(|_| "bench-data/bench.case".into());
    let runs: usize = std::env::var("NBTRAIL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // `cargo bench` passes `--bench`; a case that is missing just skips (CI runs no benchmarks).
    let Ok(mut case) = Case::open(std::path::Path::new(&dir)) else {
        eprintln!("no case at {dir}: run scripts/bench-search.sh first");
        return;
    };
    let t = Instant::now();
    let (index, _) = SearchIndex::open(&mut case).expect("index opens");
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "case {dir}: {} documents, index {:.1} MB; open {open_ms:.1} ms\n",
        index.num_docs(),
        index.size_bytes() as f64 / 1e6
    );
    println!("| query | sort | hits | p50 ms | p95 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut all = Vec::new();
    // `NBTRAIL_BENCH_ONLY=text`: only the queries containing it (to profile one).
    let only = std::env::var("NBTRAIL_BENCH_ONLY").unwrap_or_default();
    for (q, sort) in QUERIES.iter().filter(|(q, _)| q.contains(only.as_str())) {
        let req = SearchRequest {
            query: q.to_string(),
            limit: 20,
            sort: *sort,
            ..SearchRequest::default()
        };
        let mut total = 0;
        for _ in 0..3 {
            total = index.search(&case, &req).expect("search").total;
        }
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let r = index.search(&case, &req).expect("search");
                assert_eq!(r.total, total);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        all.extend_from_slice(&times);
        times.sort_by(f64::total_cmp);
        println!(
            "| `{}` | {:?} | {total} | {:.1} | {:.1} | {:.1} |",
            q.replace('|', "\\|"),
            sort,
            pct(&times, 0.5),
            pct(&times, 0.95),
            pct(&times, 0.99)
        );
    }
    all.sort_by(f64::total_cmp);
    println!(
        "| **all {} queries × {runs} runs** | | | **{:.1}** | **{:.1}** | **{:.1}** |",
        QUERIES.len(),
        pct(&all, 0.5),
        pct(&all, 0.95),
        pct(&all, 0.99)
    );
}
