//! `nbtrail notebook`: Everything that happened in one notebook (by id or any path it has had): activity, users, sessions, tables, findings.

use crate::*;

/// The arguments of `nbtrail notebook`.
#[derive(clap::Args)]
pub struct Args {
    /// Notebook id or path.
    #[arg(value_name = "NOTEBOOK")]
    name: String,
    #[command(flatten)]
    common: entity_command::EntityArgs,
}

/// Runs the command.
pub fn run(Args { name, common }: Args) -> Result<()> {
    entity_command::run(&common, &nbtrail_store::Entity::Notebook(name))
}
