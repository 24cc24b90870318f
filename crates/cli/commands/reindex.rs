//! `nbtrail reindex`: Delete the case's search index and rebuild it from the case database.

use crate::*;

/// The arguments of `nbtrail reindex`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
}

/// Runs the command.
pub fn run(Args { case }: Args) -> Result<()> {
    let mut c = open(&case)?;
    let started = std::time::Instant::now();
    let (index, sync) = search::reindex(&mut c)?;
    eprintln!(
        "indexed {} event(s) ({} table facts) in {:.1}s; index {} bytes",
        sync.indexed,
        sync.table_facts,
        started.elapsed().as_secs_f64(),
        index.size_bytes()
    );
    Ok(())
}
