//! `nbtrail scope`: Everything about one secret scope: who read its secrets (API and code), when, and what followed.

use crate::*;

/// The arguments of `nbtrail scope`.
#[derive(clap::Args)]
pub struct Args {
    /// Secret scope name.
    #[arg(value_name = "SCOPE")]
    name: String,
    #[command(flatten)]
    common: entity_command::EntityArgs,
}

/// Runs the command.
pub fn run(Args { name, common }: Args) -> Result<()> {
    entity_command::run(&common, &nbtrail_store::Entity::SecretScope(name))
}
