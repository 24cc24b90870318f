//! `nbtrail verify-log`: verify a capture log written by nbtrail-gateway — every hash link, sequence, segment
//! boundary and checkpoint signature.

use crate::*;

/// The arguments of `nbtrail verify-log`.
#[derive(clap::Args)]
pub struct Args {
    /// The gateway's --log-dir.
    dir: PathBuf,
    /// The gateway's public key (hex, as printed by `nbtrail-gateway --generate-key`, or a .pub file):
    /// every segment must name it and at least one checkpoint must verify with it.
    #[arg(long)]
    key: Option<String>,
    /// Machine-readable report.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(Args { dir, key, json }: Args) -> Result<()> {
    let key = match key {
        Some(k) if Path::new(&k).is_file() => Some(std::fs::read_to_string(&k)?.trim().to_string()),
        k => k,
    };
    let r = nbtrail_capture::verify_dir(&dir, key.as_deref())?;
    let name = render::visible(&dir.display().to_string());
    if json {
        print_json(&r)?;
    } else if r.ok {
        println!(
            "VERIFIED: {name} — {} record(s) in {} segment(s), sequence 1..{} unbroken, {} checkpoint(s){}",
            r.records,
            r.segments,
            r.last_seq,
            r.checkpoints,
            r.signer
                .as_deref()
                .map(|s| format!(" signed by {s}"))
                .unwrap_or_default()
        );
        if let (Some(a), Some(b)) = (&r.first_time, &r.last_time) {
            println!("  from {a} to {b}");
        }
        for n in &r.notes {
            println!("  note: {}", render::visible(n));
        }
    } else {
        let p = r
            .problem
            .as_ref()
            .map(std::string::ToString::to_string)
            .unwrap_or_default();
        println!("NOT VERIFIED: {name} — {}", render::visible(&p));
        println!("  {} record(s) verified before the problem", r.records);
    }
    if !r.ok {
        std::process::exit(1);
    }
    Ok(())
}
