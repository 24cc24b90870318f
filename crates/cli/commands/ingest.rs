//! `nbtrail ingest`: Ingest audit-log files or directories (recursive, .gz too) into a case, as one atomic run.

use crate::*;

/// The arguments of `nbtrail ingest`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Files or directories to read.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Idle time that ends a notebook session (e.g. `2h`, `30m`); stored in the case.
    #[arg(long, value_parser = parse_duration_ms, value_name = "DURATION")]
    idle_gap: Option<i64>,
    /// No human summary on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Do not update the search index now (the next `search`, `tables` or `reindex` catches up).
    #[arg(long)]
    no_index: bool,
    /// Require capture logs to be signed by this gateway key (64 hex digits; repeatable): records of a
    /// segment signed by another key, or unsigned, are rejected.
    #[arg(long = "capture-key", value_name = "HEX")]
    capture_keys: Vec<String>,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        paths,
        idle_gap,
        quiet,
        no_index,
        capture_keys,
    }: Args,
) -> Result<()> {
    for p in &paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    for k in &capture_keys {
        if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--capture-key {k:?}: expected 64 hex digits (the gateway's .pub file)");
        }
    }
    let mut c = Case::create(&case.case)?;
    if let Some(ms) = idle_gap {
        c.set_idle_gap_ms(ms)?;
    }
    let bar = ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{wide_bar}] {msg} ETA {eta}",
        )
        .expect("template"),
    );
    let started = std::time::Instant::now();
    let cancel = AtomicBool::new(false);
    // Test hook: die between the store's commit and the index's, as a crash or kill would.
    let fault = std::env::var_os("NBTRAIL_FAULT_EXIT_BEFORE_INDEX").is_some();
    let mut indexing = false;
    let outcome = nbtrail_ops::ingest_and_index(
        &mut c,
        &paths,
        &capture_keys,
        !no_index && !fault,
        &cancel,
        &mut |step| match step {
            nbtrail_ops::Step::Store(p) => {
                bar.set_length(p.bytes_total);
                bar.set_position(p.bytes_read);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "file {}/{} · {} events ({:.0}/s) · {} dup · {} err",
                    p.files_done,
                    p.files_total,
                    p.events,
                    p.events as f64 / secs,
                    p.duplicates,
                    p.errors
                ));
            }
            nbtrail_ops::Step::Index { done, total } => {
                if !indexing {
                    indexing = true;
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} indexing {pos}/{len} events [{wide_bar}] ETA {eta}",
                        )
                        .expect("template"),
                    );
                }
                bar.set_length(total);
                bar.set_position(done);
            }
        },
    );
    bar.finish_and_clear();
    let outcome = outcome?;
    if fault {
        std::process::exit(3);
    }
    let report = &outcome.report;
    let mut json = serde_json::to_value(report)?;
    if let Some(ix) = &outcome.index {
        json["index"] = serde_json::to_value(ix)?;
    }
    print_json(&json)?;
    if !quiet {
        render::ingest_summary(report);
        if let Some(ix) = &outcome.index {
            eprintln!(
                "indexed {} event(s) for search ({} table facts); index holds {}",
                ix.indexed, ix.table_facts, ix.documents
            );
        }
    }
    Ok(())
}
