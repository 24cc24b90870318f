//! `nbtrail verify`: Verify an evidence bundle: structure, every hash, completeness, signature. Exit 0 only if all hold.

use crate::*;

/// The arguments of `nbtrail verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The bundle.
    bundle: PathBuf,
    /// The expected signer: key fingerprint (SHA256:…, ≥16 hex digits) or public key (hex).
    #[arg(long)]
    key: Option<String>,
    /// Trusted examiners file (`<key or SHA256:fingerprint> <name>` per line); default:
    /// trusted-examiners.txt in the config directory, plus the examiner's own key.
    #[arg(long, value_name = "FILE")]
    trusted: Option<PathBuf>,
    /// Machine-readable verdict.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(
    Args {
        bundle,
        key,
        trusted,
        json,
    }: Args,
) -> Result<()> {
    let pinned = match &trusted {
        Some(f) => nbtrail_evidence::keys::load_trusted(f)?,
        None => nbtrail_evidence::keys::default_trusted(&nbtrail_evidence::keys::config_dir())?,
    };
    let v = nbtrail_evidence::verify(&bundle, key.as_deref(), &pinned)?;
    let signer = v.signer.as_deref().unwrap_or("?");
    if json {
        print_json(&v)?;
    } else if v.intact {
        let who = match (v.trust, &v.pinned_as) {
            (nbtrail_evidence::Trust::Expected, _) => "the expected key".to_string(),
            (_, Some(name)) => format!("pinned examiner {}", render::visible(name)),
            _ => "a key nobody pinned".to_string(),
        };
        println!(
            "{}: {} — {} data file(s) match the manifest, the manifest is complete, signed by {signer} ({who})",
            if v.ok {
                "VERIFIED"
            } else {
                "INTACT, SIGNER UNKNOWN"
            },
            render::visible(&bundle.display().to_string()),
            v.files_checked,
        );
        if !v.ok {
            println!(
                "  anyone can sign an altered bundle with a key of their own: check the signer with \
                 --key, or pin it in {}",
                nbtrail_evidence::keys::config_dir()
                    .join(nbtrail_evidence::keys::TRUSTED_FILE)
                    .display()
            );
        }
        for k in [
            "Contact-Name",
            "Nbtrail-Created-UTC",
            "Nbtrail-Events",
            "Nbtrail-Findings",
            "Nbtrail-Selection-Query",
            "Nbtrail-Selection-Sessions",
        ] {
            if let Some(val) = v.info.get(k).filter(|x| !x.is_empty()) {
                println!("  {k}: {}", render::visible(val));
            }
        }
    } else {
        println!(
            "NOT VERIFIED: {} — {}",
            render::visible(&bundle.display().to_string()),
            render::visible(v.problem.as_deref().unwrap_or("?"))
        );
    }
    if !v.intact {
        std::process::exit(1);
    }
    if !v.ok {
        std::process::exit(VERIFY_SIGNER_UNKNOWN);
    }
    Ok(())
}
