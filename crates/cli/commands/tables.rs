//! `nbtrail tables`: Tables read and written by the case's cells, with their readers and writers.

use crate::*;

/// The arguments of `nbtrail tables`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(Args { case, json }: Args) -> Result<()> {
    let mut c = open(&case)?;
    // Table facts are derived while indexing: bring the index up to date first.
    search::open_index(&mut c)?;
    let tables = c.table_usage()?;
    if json {
        print_json(&tables)
    } else {
        search::print_tables(&tables);
        Ok(())
    }
}
