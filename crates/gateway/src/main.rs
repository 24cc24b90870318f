//! `nbtrail-gateway`: the capture gateway's command line. See the `nbtrail_gateway` crate docs and the
//! deployment guide in `docs/gateway.md`.

use anyhow::Context;
use clap::Parser;
use nbtrail_capture::writer::{LogWriter, WriterConfig};
use nbtrail_gateway::record::Bounds;
use nbtrail_gateway::{Config, Identity, Logger};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// Records every Jupyter execution and output to an append-only, hash-chained log, in front of a
/// Jupyter server; refuses to forward what it could not log.
#[derive(Parser, Debug)]
#[command(name = "nbtrail-gateway", version, about, long_about = None)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8890")]
    listen: String,
    /// The Jupyter server, e.g. http://127.0.0.1:8888.
    #[arg(long)]
    upstream: Option<String>,
    /// Directory of the capture log (must exist; the users must not be able to write it).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Every request is this user's: the gateway serves one user's server (how JupyterHub starts it, one
    /// gateway per user; see docs/gateway.md). No header is believed.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["users", "user_header"])]
    user: Option<String>,
    /// Take the user from this header, set by the authenticating proxy in front of the gateway; believed
    /// only from a --trusted-proxy that sends the --proxy-secret-file secret.
    #[arg(long, conflicts_with = "users", requires_all = ["trusted_proxy", "proxy_secret_file"])]
    user_header: Option<String>,
    /// With --user-header: an address (IP or CIDR) of the proxy that sets it (repeatable).
    #[arg(long, value_name = "IP[/PREFIX]")]
    trusted_proxy: Vec<String>,
    /// With --user-header: file whose first line is the secret the proxy sends in X-Nbtrail-Proxy-Secret.
    #[arg(long, value_name = "FILE")]
    proxy_secret_file: Option<PathBuf>,
    /// Take the user from the request's token: file of `USER TOKEN` or `USER sha256:HEX` lines.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Run without any identity (records carry no user). For trials only.
    #[arg(long, conflicts_with_all = ["users", "user_header", "user"])]
    anonymous: bool,
    /// Sign checkpoints with this ed25519 key (hex seed file; create one with --generate-key).
    #[arg(long)]
    sign_key: Option<PathBuf>,
    /// Create a signing key at this path (and PATH.pub), then exit.
    #[arg(long, value_name = "PATH")]
    generate_key: Option<PathBuf>,
    /// Longest output string or buffer (kernel → browser) kept whole in a record; longer ones keep size and
    /// SHA-256. What goes to the kernel is never cut.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_field_bytes: usize,
    /// Largest browser → kernel frame forwarded; a larger one is refused whole (and recorded by size and
    /// SHA-256), so nothing that can execute is ever recorded in part.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Bytes of traffic recorded per user per hour; past it the user's messages are refused and outputs
    /// withheld (recorded by size and hash), with the reason shown in the notebook. 0: no quota.
    #[arg(long, default_value_t = 8 * 1024 * 1024 * 1024)]
    quota_bytes_per_hour: u64,
    /// Record the values typed at input()/getpass() prompts (redacted by default).
    #[arg(long)]
    record_input_values: bool,
    /// Start a new segment after this many bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    segment_bytes: u64,
    /// Start a new segment after this many seconds.
    #[arg(long, default_value_t = 24 * 3600)]
    segment_seconds: u64,
    /// With --sign-key: sign a checkpoint after this many records.
    #[arg(long, default_value_t = 10_000)]
    checkpoint_every: u64,
    /// With --sign-key: sign a checkpoint at least this often (seconds) while records arrive.
    #[arg(long, default_value_t = 60)]
    checkpoint_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NBTRAIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(path) = &args.generate_key {
        let key = nbtrail_capture::generate_signing_key(path)?;
        println!("{}", nbtrail_capture::public_key_hex(&key));
        return Ok(());
    }
    let upstream: hyper::Uri = args
        .upstream
        .as_deref()
        .context("--upstream URL is required")?
        .parse()
        .context("--upstream is not a URL")?;
    if upstream.scheme_str() != Some("http") {
        anyhow::bail!(
            "--upstream must be http://HOST:PORT: the Jupyter server sits on a private address behind the \
             gateway (TLS ends at the proxy in front of the gateway)"
        );
    }
    let log_dir = args.log_dir.clone().context("--log-dir DIR is required")?;
    let identity = match (&args.user, &args.user_header, &args.users, args.anonymous) {
        (Some(u), ..) if !u.trim().is_empty() => Identity::Fixed(u.trim().to_string()),
        (_, Some(h), _, _) => Identity::header(
            h,
            &args.trusted_proxy,
            args.proxy_secret_file
                .as_deref()
                .context("--proxy-secret-file FILE is required")?,
        )?,
        (_, _, Some(f), _) => Identity::load_tokens(f)?,
        (_, _, _, true) => Identity::None,
        _ => anyhow::bail!(
            "say how users are identified: --user NAME (one user's server, as JupyterHub starts it), \
             --user-header NAME with --trusted-proxy and --proxy-secret-file, --users FILE \
             (or --anonymous for a trial)"
        ),
    };
    let signer = args
        .sign_key
        .as_deref()
        .map(nbtrail_capture::read_signing_key)
        .transpose()?;
    let listen = args.listen.clone();
    let info = json!({
        "program": "nbtrail-gateway",
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "host": std::env::var("HOSTNAME").unwrap_or_default(),
        "listen": listen,
        "upstream": upstream.to_string(),
        "identity": identity.mode(),
        "user_header": args.user_header,
        "fixed_user": args.user,
        "trusted_proxies": args.trusted_proxy,
        "max_field_bytes": args.max_field_bytes,
        "max_message_bytes": args.max_message_bytes,
        "quota_bytes_per_hour": args.quota_bytes_per_hour,
        "record_input_values": args.record_input_values,
    });
    let cfg = WriterConfig {
        segment_bytes: args.segment_bytes,
        segment_age: Duration::from_secs(args.segment_seconds),
        checkpoint_every: args.checkpoint_every,
        checkpoint_age: Duration::from_secs(args.checkpoint_seconds),
        signer,
        info: info.as_object().cloned().unwrap_or_default(),
    };
    let mut writer = LogWriter::open(&log_dir, cfg)?;
    // Start the segment now: a log that cannot be written stops the gateway before it serves anything.
    writer
        .append(&[])
        .with_context(|| format!("cannot write the capture log in {}", log_dir.display()))?;
    let logger = Logger::start(writer);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        println!("nbtrail-gateway listening on {addr}");
        use std::io::Write;
        std::io::stdout().flush()?;
        tracing::info!(%addr, upstream = %upstream, log_dir = %log_dir.display(), "serving");
        let config = Config {
            upstream,
            identity,
            bounds: Bounds {
                max_field_bytes: args.max_field_bytes,
                max_message_bytes: args.max_message_bytes,
                keep_input_values: args.record_input_values,
            },
            quota_bytes_per_hour: args.quota_bytes_per_hour,
        };
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutting down: closing the capture log");
        };
        nbtrail_gateway::serve(listener, config, logger, shutdown).await
    })
}
