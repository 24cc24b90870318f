//! `nbtrail search`, `nbtrail tables`, `nbtrail reindex`: the search index from the command line.

use crate::render::visible;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use nbtrail_search::{SearchIndex, SearchResult, SyncProgress, SyncReport};
use nbtrail_store::{Case, TableUsage};
use std::io::IsTerminal;

type Sync = fn(
    &mut Case,
    &mut dyn FnMut(SyncProgress),
) -> nbtrail_search::Result<(SearchIndex, SyncReport)>;

/// Runs an index sync with a progress bar on stderr (drawn only when there is work).
fn with_bar(case: &mut Case, sync: Sync) -> Result<(SearchIndex, SyncReport)> {
    let bar = ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} indexing {pos}/{len} events [{wide_bar}] ETA {eta}",
        )
        .expect("template"),
    );
    let r = sync(case, &mut |p: SyncProgress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    });
    bar.finish_and_clear();
    Ok(r?)
}

/// Opens the case's index, bringing it up to date.
pub fn open_index(case: &mut Case) -> Result<(SearchIndex, SyncReport)> {
    with_bar(case, SearchIndex::open_with_progress)
}

/// Every event id a query matches (no cap), its warnings printed: the selection of `export` and `timeline`.
pub fn query_ids(case: &mut Case, q: &str) -> Result<Vec<i64>> {
    let (index, _) = open_index(case)?;
    let (found, warnings) = index.matching_ids(case, q)?;
    for w in warnings {
        eprintln!("nbtrail: warning: {}", crate::render::visible(&w));
    }
    Ok(found)
}

/// Deletes and rebuilds the index.
pub fn reindex(case: &mut Case) -> Result<(SearchIndex, SyncReport)> {
    with_bar(case, SearchIndex::rebuild)
}

fn highlight(text: &str, ranges: &[[usize; 2]], color: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    let (on, off) = if color {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("[", "]")
    };
    for [a, b] in ranges {
        let (a, b) = ((*a).min(chars.len()), (*b).min(chars.len()));
        if a < at {
            continue;
        }
        out.push_str(&visible(&chars[at..a].iter().collect::<String>()));
        out.push_str(on);
        out.push_str(&visible(&chars[a..b].iter().collect::<String>()));
        out.push_str(off);
        at = b;
    }
    out.push_str(&visible(&chars[at..].iter().collect::<String>()));
    out.replace('\n', " ⏎ ")
}

/// Human rendering of a search result.
pub fn print_result(r: &SearchResult) {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for w in &r.warnings {
        eprintln!("nbtrail: warning: {}", visible(w));
    }
    println!("{} hit(s)", r.total);
    for h in &r.hits {
        println!(
            "{}  #{:<8} {:<28} {:<30} {}{}",
            h.time,
            h.event_id,
            visible(h.user.as_deref().unwrap_or("-")),
            visible(&h.action),
            visible(h.notebook_path.as_deref().unwrap_or("")),
            h.session_id
                .as_deref()
                .map(|s| format!("  session {s}"))
                .unwrap_or_default()
        );
        if !h.rules.is_empty() {
            println!("    findings: {}", h.rules.join(", "));
        }
        println!(
            "    {}",
            highlight(&h.snippet.text, &h.snippet.ranges, color)
        );
    }
    for name in nbtrail_search::FACETS {
        if let Some(values) = r.facets.get(*name).filter(|v| !v.is_empty()) {
            let shown: Vec<String> = values
                .iter()
                .take(8)
                .map(|f| format!("{} ({})", visible(&f.value), f.count))
                .collect();
            println!("{name}: {}", shown.join(", "));
        }
    }
    if let (Some(first), Some(last)) = (r.histogram.buckets.first(), r.histogram.buckets.last()) {
        let max = r
            .histogram
            .buckets
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(1)
            .max(1);
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let spark: String = r
            .histogram
            .buckets
            .iter()
            .map(|b| {
                if b.count == 0 {
                    ' '
                } else {
                    BARS[((b.count * 7) / max) as usize]
                }
            })
            .collect();
        println!(
            "time: {} … {} ({} per bucket)\n      {spark}",
            nbtrail_model::format_time(
                nbtrail_model::time_from_ms(first.start_ms).unwrap_or_default()
            ),
            nbtrail_model::format_time(
                nbtrail_model::time_from_ms(last.start_ms + r.histogram.interval_ms)
                    .unwrap_or_default()
            ),
            human_ms(r.histogram.interval_ms)
        );
    }
}

fn human_ms(ms: i64) -> String {
    const UNITS: &[(i64, &str)] = &[
        (365 * 86_400_000, "y"),
        (7 * 86_400_000, "w"),
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1000, "s"),
    ];
    for (u, name) in UNITS {
        if ms >= *u && ms % u == 0 {
            return format!("{}{name}", ms / u);
        }
    }
    format!("{ms}ms")
}

/// Human rendering of `nbtrail tables`.
pub fn print_tables(tables: &[TableUsage]) {
    if tables.is_empty() {
        println!("no tables found in the case's cells");
        return;
    }
    println!(
        "{:<40} {:>6} {:>6}  readers / writers",
        "table", "reads", "writes"
    );
    let users = |v: &[(String, u64)]| {
        v.iter()
            .map(|(u, n)| format!("{} ({n})", visible(u)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for t in tables {
        println!(
            "{:<40} {:>6} {:>6}  r: {}{}{}",
            visible(&t.name),
            t.reads,
            t.writes,
            users(&t.readers),
            if t.writers.is_empty() {
                String::new()
            } else {
                format!("  w: {}", users(&t.writers))
            },
            if t.via_lineage > 0 {
                format!("  ({} from Unity Catalog lineage)", t.via_lineage)
            } else {
                String::new()
            }
        );
    }
}
