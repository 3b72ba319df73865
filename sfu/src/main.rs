use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sfu::shell::activation;
use sfu::shell::config::{Config, LogFormat};
use sfu::shell::drain::Signals;
use sfu::shell::server::Server;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
    // And the meetings' own policies and the certificate, which a start
    // would read.
    config.policies()?;
    config.tls()?;
    init_logs(config.log_format);
    if let Some(path) = &cli.check_config {
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
    let server = Server::bind_with(&config, passed)
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
