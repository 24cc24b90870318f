//! `nbtrail analyze`: find credential leaks, hardcoded credentials, insecure configuration, SQL injection,
//! unsafe deserialization and data exfiltration in a case's sessions, in notebook files, or in sessions given
//! as JSON lines on stdin.

use crate::*;

/// The arguments of `nbtrail analyze`.
#[derive(clap::Args)]
pub struct Args {
    /// Analyze this case's sessions and store the findings.
    #[arg(long, value_name = "DIR")]
    case: Option<PathBuf>,
    /// With --case: session ids (default: all). Without: notebook files.
    targets: Vec<String>,
    /// Rules file to add to the defaults (repeatable).
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Use only the --rules files.
    #[arg(long)]
    no_default_rules: bool,
    /// Read sessions as JSON lines on stdin, write findings as JSON lines on stdout.
    #[arg(long, conflicts_with_all = ["case", "targets"])]
    jsonl: bool,
    /// Also write SARIF 2.1.0 to this file.
    #[arg(long, value_name = "FILE")]
    sarif: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = analyze::Format::Text)]
    format: analyze::Format,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
    /// With --case: also load the Sigma event rules in this directory (repeatable; the case folder's own
    /// `detections/` directory is loaded when it exists).
    #[arg(long = "detection-rules", value_name = "DIR")]
    detection_rules: Vec<PathBuf>,
    /// With --case: do not evaluate the event detection rules.
    #[arg(long)]
    no_detections: bool,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        targets,
        rules,
        no_default_rules,
        jsonl,
        sarif,
        format,
        json,
        detection_rules,
        no_detections,
    }: Args,
) -> Result<()> {
    let format = if json { analyze::Format::Json } else { format };
    // Exit status: 0 no findings, 1 findings, 2 error, 3 files: the analysis is incomplete (a file
    // unreadable or a cell not analyzed), whatever was found (a CI gate).
    let result = (|| -> Result<(usize, bool)> {
        let (rules, sha) = analyze::load_rules(&rules, no_default_rules)?;
        if jsonl {
            Ok((analyze::analyze_pipe(&rules)?, false))
        } else if let Some(dir) = case {
            let detections = if no_detections {
                None
            } else {
                let mut dirs = detection_rules;
                let own = dir.join("detections");
                if own.is_dir() {
                    dirs.push(own);
                }
                Some(nbtrail_detect::RuleSet::load(&dirs)?)
            };
            Ok((
                analyze::analyze_case(
                    &dir,
                    &targets,
                    &rules,
                    &sha,
                    detections.as_ref(),
                    format,
                    sarif.as_deref(),
                )?,
                false,
            ))
        } else if targets.is_empty() {
            bail!("nothing to analyze: give --case DIR, notebook files, or --jsonl")
        } else {
            let o = analyze::analyze_files(&targets, &rules, format, sarif.as_deref())?;
            Ok((o.findings, o.incomplete))
        }
    })();
    match result {
        Ok((_, true)) => std::process::exit(3),
        Ok((0, false)) => Ok(()),
        Ok(_) => std::process::exit(1),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("nbtrail: error: {}", render::visible(&msg));
            std::process::exit(2);
        }
    }
}
