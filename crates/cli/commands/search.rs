//! `nbtrail search`: Full-text search over the case's events, cells and outputs (see QUERY SYNTAX below).

use crate::*;

/// The arguments of `nbtrail search`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// The query; several arguments are joined with spaces. Empty: every event.
    #[arg(value_name = "QUERY")]
    query: Vec<String>,
    /// Hits to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Hits to skip (paging).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Order: by time (newest first; `--oldest` to reverse) or by relevance.
    #[arg(long, value_enum, default_value_t = SortArg::Time)]
    sort: SortArg,
    /// With `--sort time`: oldest first.
    #[arg(long)]
    oldest: bool,
    /// Values per facet.
    #[arg(long, default_value_t = 20)]
    facets: usize,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        query,
        limit,
        offset,
        sort,
        oldest,
        facets,
        json,
    }: Args,
) -> Result<()> {
    let mut c = open(&case)?;
    let (index, _) = search::open_index(&mut c)?;
    let req = nbtrail_search::SearchRequest {
        query: query.join(" "),
        limit,
        offset,
        sort: match (sort, oldest) {
            (SortArg::Relevance, _) => nbtrail_search::Sort::Relevance,
            (SortArg::Time, true) => nbtrail_search::Sort::Oldest,
            (SortArg::Time, false) => nbtrail_search::Sort::Newest,
        },
        now_ms: None,
        facet_limit: facets,
    };
    let result = index.search(&c, &req)?;
    if json {
        print_json(&result)
    } else {
        search::print_result(&result);
        Ok(())
    }
}
