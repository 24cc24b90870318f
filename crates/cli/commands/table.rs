//! `nbtrail table`: Everything one table had done to it: the cells and lineage rows that read or wrote it, who, when, in which sessions.

use crate::*;

/// The arguments of `nbtrail table`.
#[derive(clap::Args)]
pub struct Args {
    /// catalog.schema.table (any case).
    #[arg(value_name = "TABLE")]
    name: String,
    #[command(flatten)]
    common: entity_command::EntityArgs,
}

/// Runs the command.
pub fn run(Args { name, common }: Args) -> Result<()> {
    entity_command::run(&common, &nbtrail_store::Entity::Table(name))
}
