use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sfu::shell::config::Config;
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
    /// Print a link that opens a new meeting as its host (valid a day).
    #[arg(long)]
    host_link: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // matrix-sdk logs expected answers (a 404 for absent
                // account data) as errors; the bridge logs what matters.
                .unwrap_or_else(|_| {
                    "info,rtc=warn,rtc_ice=warn,rtc_dtls=error,matrix_sdk=warn,\
                     matrix_sdk::http_client=off,matrix_sdk_base=warn,matrix_sdk_crypto=error"
                        .into()
                }),
        )
        // Logs go to stderr; stdout carries only the line saying where we listen.
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(port) = cli.media_port {
        config.media_port = port;
    }
    config.validate()?;
    let server = Server::bind(&config).await.context("starting the server")?;
    // Tests and scripts read this line to find the server.
    println!(
        "meet: listening on http://{} (media UDP ports {:?})",
        server.http_addr(),
        server.media_ports()
    );
    if cli.host_link {
        println!("meet: open a meeting as its host: {}", server.host_link());
    }
    server.run(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
