//! `nbtrail notes`: The case's notes, questions, conclusions and starred items.

use crate::*;

/// The arguments of `nbtrail notes`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Only the notes on this target (`case`, `event:ID`, `session:ID`, `finding:ID`).
    #[arg(long)]
    target: Option<String>,
    /// Machine-readable output: `{notes: [{id, at, examiner, target, kind, text}], starred: [target]}`.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(Args { case, target, json }: Args) -> Result<()> {
    let c = open(&case)?;
    let notes = c.notes(target.as_deref())?;
    let starred = c.starred()?;
    if json {
        return print_json(&serde_json::json!({ "notes": notes, "starred": starred }));
    }
    println!("starred ({}):", starred.len());
    for t in &starred {
        println!("  ★ {}", render::visible(t));
    }
    println!(
        "notes ({}):",
        notes.iter().filter(|n| !n.kind.ends_with("star")).count()
    );
    for n in notes.iter().filter(|n| !n.kind.ends_with("star")) {
        println!(
            "  [{}] {} {} {} — {}",
            n.kind,
            n.at,
            render::visible(&n.examiner),
            render::visible(&n.target),
            render::visible(&n.text)
        );
    }
    Ok(())
}
