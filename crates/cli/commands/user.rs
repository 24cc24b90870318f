//! `nbtrail user`: Everything one user did: activity over time, sessions with their findings, tables, secrets, downloads, detections.

use crate::*;

/// The arguments of `nbtrail user`.
#[derive(clap::Args)]
pub struct Args {
    /// The user's e-mail (any case).
    #[arg(value_name = "EMAIL")]
    name: String,
    #[command(flatten)]
    common: entity_command::EntityArgs,
}

/// Runs the command.
pub fn run(Args { name, common }: Args) -> Result<()> {
    entity_command::run(&common, &nbtrail_store::Entity::User(name))
}
