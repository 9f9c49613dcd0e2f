//! `streamctl`: the command-line tool of StreamHouse.
//!
//! Everything but `inspect` talks to the HTTP API of a running
//! `streamhouse serve` (see `crates/streamhouse-server/src/http/`, the
//! source of truth for the JSON shapes), as the user named by `--user`
//! (password in `STREAMCTL_PASSWORD`) when the server requires credentials;
//! `inspect` decodes a local segment or batch object file with the storage
//! crate's segment reader.
//!
//! The invariant that matters: stdout carries only the command's result —
//! a table, or exactly one JSON document (JSON lines for `consume`) — so
//! it can be piped; progress bars, notes and errors go to stderr. A failure
//! is one `error: …` line on stderr and exit code 1; clap's usage errors
//! exit 2.

mod acl;
mod api;
mod client;
mod consume;
mod group;
mod inspect;
mod output;
mod produce;
mod segments;
mod topic;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::{ApiClient, ClientOptions, Credentials};
use crate::output::OutputFormat;

/// Command-line tool for StreamHouse, the S3-native Kafka alternative:
/// manage topics, produce and consume records, look at consumer groups and
/// segments over a server's HTTP API, and decode segment files offline.
#[derive(Debug, Parser)]
#[command(name = "streamctl", version, propagate_version = true)]
struct Cli {
    /// Base URL of the server's HTTP API (`streamhouse serve --http-listen`).
    #[arg(
        long,
        global = true,
        env = "STREAMCTL_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    server: String,
    /// `table` for people; `json` for scripts: one JSON document per
    /// command, except `consume`, which prints one JSON object per record
    /// and line.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    /// The StreamHouse user to authenticate as (HTTP Basic), for servers
    /// with SASL listeners or ACLs; its password is read from the
    /// environment variable STREAMCTL_PASSWORD.
    #[arg(long, global = true, env = "STREAMCTL_USER", value_name = "NAME")]
    user: Option<String>,
    /// PEM file of the CA certificates to trust for an https:// server, in
    /// addition to the system's.
    #[arg(long, global = true, env = "STREAMCTL_CA_CERT", value_name = "PEM")]
    ca_cert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce one record from flags, or one record per line of stdin.
    Produce(produce::ProduceArgs),
    /// Read records from a topic's partitions.
    Consume(consume::ConsumeArgs),
    /// List and describe consumer groups (members, committed offsets, lag).
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// List the segment rows (stored runs of offsets) of a topic's partitions.
    Segments(segments::SegmentsArgs),
    /// Decode a local segment file or flushed batch object (no server needed).
    Inspect(inspect::InspectArgs),
    /// Create, list and delete users (SCRAM credentials).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Add, list and remove ACLs (kafka-acls.sh's flags).
    #[command(subcommand)]
    Acl(acl::AclCommand),
}

fn main() -> ExitCode {
    // Usage errors print clap's message and exit 2 here.
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `streamctl consume … | head` closes stdout early; that is the
        // reader being done, not a failure worth a message.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let output = cli.output;
    // Built per command rather than up front, so that `inspect`, which needs
    // no server, is not refused for a bad --server it does not use.
    let (server, user, ca_cert) = (cli.server, cli.user, cli.ca_cert);
    let client =
        || ApiClient::with_options(&server, client_options(user.as_deref(), ca_cert.clone())?);
    match cli.command {
        Command::Topic(command) => topic::run(&client()?, command, output).await,
        Command::Produce(args) => produce::run(&client()?, args, output).await,
        Command::Consume(args) => consume::run(&client()?, args, output).await,
        Command::Group(command) => group::run(&client()?, command, output).await,
        Command::Segments(args) => segments::run(&client()?, args, output).await,
        Command::Inspect(args) => inspect::run(args, output),
        Command::User(command) => user::run(&client()?, command, output).await,
        Command::Acl(command) => acl::run(&client()?, command, output).await,
    }
}

/// The environment variable holding `--user`'s password, kept off the
/// command line.
const PASSWORD_VARIABLE: &str = "STREAMCTL_PASSWORD";

fn client_options(
    user: Option<&str>,
    ca_cert: Option<std::path::PathBuf>,
) -> anyhow::Result<ClientOptions> {
    let credentials = match user {
        None => None,
        Some(user) => {
            let password = std::env::var(PASSWORD_VARIABLE).map_err(|_| {
                anyhow::anyhow!(
                    "--user {user}: set the user's password in the environment variable \
                     {PASSWORD_VARIABLE}"
                )
            })?;
            Some(Credentials {
                user: user.to_owned(),
                password,
            })
        }
    };
    Ok(ClientOptions {
        credentials,
        ca_cert,
    })
}

/// The error and its causes on one line (`outer: inner: root`), with any
/// newline a server or library put in a message flattened.
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn errors_render_on_one_line_with_their_causes() {
        let error = anyhow::anyhow!("root\ncause").context("reading x");
        assert_eq!(one_line(&error), "reading x: root cause");
    }
}
