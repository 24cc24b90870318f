//! The entity commands' shared arguments and run (`nbtrail user`, `notebook`, `table`, `scope`): each
//! command file names its entity and calls [`run`].

use crate::*;

/// The arguments every entity command takes besides the entity's name.
#[derive(clap::Args)]
pub struct EntityArgs {
    #[command(flatten)]
    pub case: CaseArg,
    /// Machine-readable output (`nbtrail_ops::EntityPage`).
    #[arg(long)]
    pub json: bool,
}

/// Builds and prints the page of `entity`.
pub fn run(args: &EntityArgs, entity: &nbtrail_store::Entity) -> Result<()> {
    let c = open(&args.case)?;
    let page = nbtrail_ops::entity_page(&c, entity)?;
    if args.json {
        print_json(&page)
    } else {
        render::entity(&page);
        Ok(())
    }
}
