//! `streamhouse serve`: parse the configuration, start the agent, run until
//! SIGINT or SIGTERM, shut down cleanly; SIGHUP re-reads the TLS files.
//! `streamhouse user …`: manage users in the metadata store and exit.
//! `streamhouse check`: check the stored data and exit.
//!
//! Exit codes: 0 after a clean shutdown (or `--help`), 2 for a bad command
//! line or configuration, 1 when the agent cannot start or fails (or a
//! user command fails). `check` exits 0 when the data is consistent, 1
//! when it found problems and 2 when it could not run.

use std::io::IsTerminal;
use std::process::ExitCode;

use streamhouse_server::{
    CliError, Invocation, RunningServer, Server, ServerConfig, UserCommand, parse_command,
    report_lines, run_check, run_user_command,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// jemalloc returns freed memory to the system after a short decay; with
/// the system allocator, the large short-lived buffers of flushes and
/// compaction left the resident set ratcheting upwards.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (`_RJEM_MALLOC_CONF` in the environment overrides
/// them): freed pages go back to the system after about a second, purged
/// by jemalloc's own thread. By default they stay ten seconds, and only
/// an allocating thread purges its arena: a compaction pass's buffers
/// (rows read, segments and upload parts written, all freed at once)
/// stayed resident long after it, and arenas of idle threads kept theirs.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"background_thread:true,dirty_decay_ms:1000,oversize_threshold:1048576\0";

fn main() -> ExitCode {
    let config = match parse_command(std::env::args_os()) {
        Ok(Invocation::Serve(config)) => config,
        Ok(Invocation::User(command)) => return user(command),
        Ok(Invocation::Check(config)) => return check(config),
        Err(error) => {
            match (error.one_line(), &error) {
                (Some(line), _) => eprintln!("{line}"),
                // Help and version: clap's own, complete output.
                (None, CliError::Clap(clap_error)) => {
                    let _ = clap_error.print();
                }
                (None, CliError::Config(_)) => {}
            }
            return ExitCode::from(error.exit_code());
        }
    };
    if let Err(message) = init_logging() {
        eprintln!("error: RUST_LOG: {message}");
        return ExitCode::from(2);
    }
    raise_open_file_limit();
    let runtime = match start_runtime(&mut tokio::runtime::Builder::new_multi_thread()) {
        Ok(runtime) => runtime,
        Err(()) => return ExitCode::FAILURE,
    };
    runtime.block_on(serve(config))
}

/// Builds a command's async runtime, saying on stderr why it could not.
fn start_runtime(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ()> {
    builder.enable_all().build().map_err(|error| {
        eprintln!("error: cannot start the async runtime: {error}");
    })
}

/// Runs a `streamhouse user` command on a small runtime of its own.
fn user(command: UserCommand) -> ExitCode {
    let runtime = match start_runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(runtime) => runtime,
        Err(()) => return ExitCode::FAILURE,
    };
    let stdin = std::io::stdin();
    let result = runtime.block_on(run_user_command(
        command,
        &mut stdin.lock(),
        &mut std::io::stdout(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let line = error
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `streamhouse check`: the report on stdout, exit code 0 when
/// consistent, 1 when not, 2 when the stores cannot be used.
fn check(config: ServerConfig) -> ExitCode {
    if let Err(message) = init_logging() {
        eprintln!("error: RUST_LOG: {message}");
        return ExitCode::from(2);
    }
    let runtime = match start_runtime(&mut tokio::runtime::Builder::new_multi_thread()) {
        Ok(runtime) => runtime,
        Err(()) => return ExitCode::from(2),
    };
    match runtime.block_on(run_check(&config)) {
        Ok(report) => {
            for line in report_lines(&report) {
                println!("{line}");
            }
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            let line = error
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("error: {line}");
            ExitCode::from(2)
        }
    }
}

/// Every connection is a file descriptor: lift the soft limit to the hard
/// one, as Kafka's documentation asks of brokers, so that
/// `--max-connections` rather than the default 1024 is what bounds them.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(%error, soft, hard, "cannot raise the open file limit");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read the open file limit"),
    }
}

/// Logs go to stderr; stdout stays free for anything a wrapper wants.
fn init_logging() -> Result<(), String> {
    let filter = EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env()
        .map_err(|e| e.to_string())?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| e.to_string())
}

async fn serve(config: ServerConfig) -> ExitCode {
    // Installed before starting, so a signal during startup is not fatal
    // by default; it is acted on once the agent is up.
    let signals = match Signals::new() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(error) => {
            let line = error
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("error: {line}");
            return if error.is_config() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            };
        }
    };
    run_until_signal(server, signals).await
}

async fn run_until_signal(server: RunningServer, mut signals: Signals) -> ExitCode {
    let failed = loop {
        tokio::select! {
            name = signals.next_or_hangup() => match name {
                Some(name) => {
                    tracing::info!("received {name}; shutting down");
                    break false;
                }
                None => match server.reload_tls() {
                Ok(true) => tracing::info!("received SIGHUP; TLS certificates reloaded"),
                Ok(false) => tracing::info!("received SIGHUP; no TLS certificates to reload"),
                Err(error) => tracing::error!(
                    %error,
                    "received SIGHUP; cannot reload TLS certificates, keeping the ones in use"
                ),
                },
            },
            () = server.stopped() => break true,
        }
    };
    // A second signal means "stop now", for when a shutdown hangs.
    tokio::spawn(async move {
        let name = signals.next().await;
        eprintln!("received {name} during shutdown; exiting immediately");
        std::process::exit(1);
    });
    match server.shutdown().await {
        Ok(()) if !failed => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(error) => {
            tracing::error!(%error, "shutdown finished with an error");
            ExitCode::FAILURE
        }
    }
}

struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    /// SIGHUP re-reads the TLS files; it never stops the agent.
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next stopping signal's name, or `None` for SIGHUP.
    async fn next_or_hangup(&mut self) -> Option<&'static str> {
        tokio::select! {
            _ = self.terminate.recv() => Some("SIGTERM"),
            _ = self.interrupt.recv() => Some("SIGINT"),
            _ = self.hangup.recv() => None,
        }
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
