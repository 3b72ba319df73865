use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sfu::shell::activation;
use sfu::shell::config::{Config, LogFormat};
use sfu::shell::server::Server;
use sfu::shell::signals::Signals;

/// Self-hosted video meetings: web client, signalling and media routing.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// HTTP listen address (web client, signalling, metrics).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// First UDP media port (0 picks free ports).
    #[arg(long)]
    media_port: Option<u16>,
    /// TOML configuration file (see ops/meet.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Checks this configuration file (with the MEET_* environment and the
    /// flags above) and exits: 0 if it is valid, 1 with the bad key if not.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Print a link that opens a new meeting as its host (valid a day).
    #[arg(long)]
    host_link: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Erases what meet holds about one person, for a data subject's
    /// request: their ghost users (deactivated and erased on the
    /// homeserver), their rows in the chat store and their messages still
    /// waiting for the homeserver. Works while the server runs; run it as
    /// the server's user, in its working directory.
    Erase(EraseArgs),
}

#[derive(Args)]
struct EraseArgs {
    /// The configuration file the server runs with.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// A Matrix user, by id (@alice:example.org).
    #[arg(long, value_name = "USER_ID", required_unless_present = "guest_name")]
    matrix_user: Option<String>,
    /// A guest, by the name they gave (their ghost user shows "NAME (guest)").
    #[arg(long, value_name = "NAME", conflicts_with = "matrix_user")]
    guest_name: Option<String>,
    /// Only show what would be erased.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Erase(args)) = cli.command {
        return erase(args).await;
    }
    let file = cli.check_config.as_deref().or(cli.config.as_deref());
    let mut config = Config::load(file, std::env::vars())?;
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(port) = cli.media_port {
        config.media_port = port;
    }
    config.validate()?;
    // What the chat bridge derives from the rest (URLs) is checked too.
    config.chat()?;
    // And the meetings' own policies and the certificates (the one served,
    // the CAs trusted for turns:), which a start would read.
    config.policies()?;
    config.tls()?;
    config.turn_trust()?;
    init_logs(config.log_format);
    if let Some(path) = &cli.check_config {
        for w in &config.warnings() {
            eprintln!("meet: warning: {w}");
        }
        println!("meet: configuration {} is valid", path.display());
        return Ok(());
    }
    // Port 443 under the hardened unit: meet.socket binds it and passes
    // it on. `listen` then names that socket, so that everything derived
    // from it (links, what counts as loopback) is about where we serve.
    let passed = activation::listener().context("taking the socket systemd passed")?;
    if let Some(listener) = &passed {
        let addr = listener
            .local_addr()
            .context("reading the passed socket's address")?;
        if config.listen != addr {
            tracing::info!(%addr, listen = %config.listen, "serving on the socket systemd passed, not on `listen`");
        }
        config.listen = addr;
    }
    for w in &config.warnings() {
        tracing::warn!("{w}");
    }
    let server = Server::bind_with(&config, passed, Default::default())
        .await
        .context("starting the server")?;
    let signals = Signals::install().context("installing signal handlers")?;
    // Tests and scripts read this line to find the server.
    println!(
        "meet: listening on {}://{} (media UDP ports {:?})",
        server.scheme(),
        server.http_addr(),
        server.media_ports()
    );
    if cli.host_link {
        println!("meet: open a meeting as its host: {}", server.host_link());
    }
    let drain = server.drain();
    server
        .run(signals.drain_then_stop(drain, config.drain_timeout()))
        .await?;
    Ok(())
}

/// `meet erase`: prints what it found and did; fails if the store is not
/// there or the homeserver did not erase everything.
async fn erase(args: EraseArgs) -> anyhow::Result<()> {
    let config = Config::load(Some(&args.config), std::env::vars())?;
    let Some(chat) = config.chat()? else {
        println!(
            "meet erase: chat is off in {} (no matrix_homeserver): meet keeps nothing about people on disk but its logs",
            args.config.display()
        );
        return Ok(());
    };
    let subject = match (args.matrix_user, args.guest_name) {
        (Some(u), _) => chat::Subject::MatrixUser(u),
        (None, Some(n)) => chat::Subject::GuestName(n),
        (None, None) => anyhow::bail!("name a --matrix-user or a --guest-name"),
    };
    let store = std::path::absolute(&chat.store_dir).unwrap_or_else(|_| chat.store_dir.clone());
    let report = chat::erase(&chat, &subject, args.dry_run).await?;
    if report.no_store {
        anyhow::bail!(
            "no chat store in {}: `matrix_store` is taken from the server's working directory \
             (/var/lib/meet for the service); run this there",
            store.display()
        );
    }
    let who = match &subject {
        chat::Subject::MatrixUser(u) => format!("Matrix user {u}"),
        chat::Subject::GuestName(n) => format!("guest \"{n}\""),
    };
    println!("meet erase: {who}, chat store {}", store.display());
    if report.ghosts.is_empty() {
        println!("  no ghost user");
    }
    let mut failed = 0;
    for g in &report.ghosts {
        let name = g.display_name.as_deref().unwrap_or("(name not kept)");
        match &g.on_homeserver {
            Ok(()) => println!(
                "  ghost user {} \"{name}\": deactivated and erased on the homeserver; its rows deleted",
                g.user_id
            ),
            Err(e) if args.dry_run => println!("  ghost user {} \"{name}\": would be erased ({e})", g.user_id),
            Err(e) => {
                failed += 1;
                println!(
                    "  ghost user {} \"{name}\": rows deleted; NOT yet erased on the homeserver: {e}",
                    g.user_id
                );
            }
        }
    }
    if !args.dry_run {
        println!(
            "  messages still waiting for the homeserver, deleted: {}",
            report.messages_removed
        );
    }
    println!(
        "  not held in meet's store: what the homeserver keeps (the person's own account, \
         messages in rooms); see docs/operating.md, \"Personal data and retention\""
    );
    if failed > 0 {
        anyhow::bail!(
            "{failed} ghost user(s) not erased on the homeserver yet; the running server retries every hour, or run this again"
        );
    }
    Ok(())
}

/// Logs go to stderr; stdout carries only the line saying where we listen.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // matrix-sdk logs expected answers (a 404 for absent account data)
        // as errors; the bridge logs what matters.
        .unwrap_or_else(|_| {
            "info,rtc=warn,rtc_ice=warn,rtc_dtls=error,matrix_sdk=warn,\
             matrix_sdk::http_client=off,matrix_sdk_base=warn,matrix_sdk_crypto=error"
                .into()
        });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}
