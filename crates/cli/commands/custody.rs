//! `nbtrail custody`: Show the case's custody log (who ingested, analyzed, triaged, noted, exported what, when).

use crate::*;

/// The arguments of `nbtrail custody`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Verify the hash chain; exit 1 at the first broken entry.
    #[arg(long)]
    verify: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(Args { case, verify, json }: Args) -> Result<()> {
    let c = open(&case)?;
    let log = c.custody_log()?;
    let check = nbtrail_store::custody::verify_chain(&log);
    if json {
        print_json(&serde_json::json!({
            "entries": log,
            "chain_ok": check.is_ok(),
            "problem": check.as_ref().err(),
        }))?;
    } else {
        for e in &log {
            println!(
                "#{:<4} {}  {:<8} {:<16} {}  {}",
                e.seq,
                e.at,
                e.action,
                render::visible(&e.examiner),
                &e.hash[..12],
                render::visible(&e.details.to_string())
            );
        }
        match &check {
            Ok(()) => eprintln!("custody log: {} entries, hash chain intact", log.len()),
            Err(p) => eprintln!("custody log: CHAIN BROKEN: {}", render::visible(p)),
        }
    }
    if verify && check.is_err() {
        std::process::exit(1);
    }
    Ok(())
}
