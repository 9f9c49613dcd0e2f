//! The command line of the `streamhouse` binary: `streamhouse serve` and
//! its flags, each of which may also come from the environment or a TOML
//! file.
//!
//! clap only collects strings here; every value is checked by
//! [`crate::config`], so a bad value gets the same one-line message whether
//! it came from a flag, a variable or the file. Precedence: flag >
//! environment > `--config` file > default.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, Parser, Subcommand};

use crate::config::{ConfigError, Origin, RawSettings, ServerConfig, Setting, load_config_file};

/// StreamHouse: an S3-native, Kafka-compatible event streaming server.
#[derive(Debug, Parser)]
#[command(name = "streamhouse", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent: the Kafka protocol server and the HTTP API.
    Serve(ServeArgs),
}

/// Flags of `streamhouse serve`. Every flag can also be set with the
/// environment variable shown, or in the `--config` TOML file under the
/// flag's name in snake_case (`kafka_listen = "0.0.0.0:9092"`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with settings; flags and environment variables override it.
    #[arg(long, env = "STREAMHOUSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding the default metadata database and object store
    /// [default: ./data].
    #[arg(long, env = "STREAMHOUSE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Metadata store: sqlite://PATH or postgres://USER[:PASSWORD]@HOST/DB
    /// [default: sqlite://DATA_DIR/metadata.db].
    #[arg(long, env = "STREAMHOUSE_METADATA", value_name = "URL")]
    pub metadata: Option<String>,
    /// Object store: file://PATH or s3://BUCKET[/PREFIX]; S3 endpoint and
    /// credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY and AWS_REGION [default: file://DATA_DIR/objects].
    #[arg(long, env = "STREAMHOUSE_OBJECT_STORE", value_name = "URL")]
    pub object_store: Option<String>,
    /// Kafka protocol listen address; port 0 picks a free port
    /// [default: 127.0.0.1:9092].
    #[arg(long, env = "STREAMHOUSE_KAFKA_LISTEN", value_name = "HOST:PORT")]
    pub kafka_listen: Option<String>,
    /// Host Kafka clients are told to connect to [default: the listen host,
    /// or this machine's hostname when listening on 0.0.0.0 or ::].
    #[arg(long, env = "STREAMHOUSE_ADVERTISED_HOST", value_name = "HOST")]
    pub advertised_host: Option<String>,
    /// HTTP API listen address; port 0 picks a free port
    /// [default: 127.0.0.1:8080].
    #[arg(long, env = "STREAMHOUSE_HTTP_LISTEN", value_name = "HOST:PORT")]
    pub http_listen: Option<String>,
    /// This agent's name; the Kafka node id is derived from it
    /// [default: HOSTNAME-KAFKA_PORT].
    #[arg(long, env = "STREAMHOUSE_AGENT_ID", value_name = "ID")]
    pub agent_id: Option<String>,
    /// The zone (rack) this agent runs in, reported to Kafka clients.
    #[arg(long, env = "STREAMHOUSE_ZONE", value_name = "ZONE")]
    pub zone: Option<String>,
    /// Longest time an append waits before its flush starts, 1-10000
    /// [default: 50].
    #[arg(
        long,
        env = "STREAMHOUSE_FLUSH_INTERVAL_MS",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub flush_interval_ms: Option<String>,
    /// Bytes of segment data the read cache keeps in memory
    /// [default: 268435456].
    #[arg(
        long,
        env = "STREAMHOUSE_CACHE_BYTES",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub cache_bytes: Option<String>,
    /// Largest HTTP request body accepted [default: 16777216].
    #[arg(
        long,
        env = "STREAMHOUSE_MAX_BODY_BYTES",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub max_body_bytes: Option<String>,
    /// Size a compacted segment aims for, at least 1024 [default: 67108864].
    #[arg(
        long,
        env = "STREAMHOUSE_COMPACTION_TARGET_BYTES",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub compaction_target_bytes: Option<String>,
    /// Age after which a partition's newest small segments are compacted
    /// even below the target size [default: 60000].
    #[arg(
        long,
        env = "STREAMHOUSE_COMPACTION_SPAN_MS",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub compaction_span_ms: Option<String>,
    /// How often compaction, retention and garbage collection run, each on
    /// one agent of the cluster at a time, at least 10 [default: 30000].
    #[arg(
        long,
        env = "STREAMHOUSE_JOB_INTERVAL_MS",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub job_interval_ms: Option<String>,
    /// How long an object outlives its last reference (or, never committed,
    /// its upload) before garbage collection deletes it [default: 600000].
    #[arg(
        long,
        env = "STREAMHOUSE_GC_GRACE_MS",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub gc_grace_ms: Option<String>,
}

// Numeric flags allow negative numbers so that `--cache-bytes -1` reaches
// the range check (and its message naming the flag) instead of clap
// reading `-1` as an unknown flag.

/// Why the command line did not produce a configuration.
#[derive(Debug)]
pub enum CliError {
    /// clap's own outcome: help or version output (exit 0) or a usage
    /// error such as an unknown flag (exit 2).
    Clap(clap::Error),
    /// A value was present but unusable.
    Config(ConfigError),
}

impl CliError {
    /// One line for a usage error (clap's first line names the flag), or
    /// `None` when clap's full output (help, version) should be printed;
    /// [`CliError::exit_code`] tells the exit code either way.
    pub fn one_line(&self) -> Option<String> {
        match self {
            // Help and version go to stdout; `streamhouse` alone prints the
            // help, as an error.
            CliError::Clap(e)
                if !e.use_stderr()
                    || e.kind()
                        == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
            {
                None
            }
            CliError::Clap(e) => {
                let rendered = e.render().to_string();
                let first = rendered.lines().find(|l| !l.trim().is_empty());
                Some(first.unwrap_or("error: invalid arguments").to_string())
            }
            CliError::Config(e) => Some(format!("error: {e}")),
        }
    }
}

impl CliError {
    /// 0 for `--help` and `--version`, 2 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Clap(e) if !e.use_stderr() => 0,
            _ => 2,
        }
    }
}

/// Parses `args` (including the program name) and the environment into
/// the configuration for `serve`.
pub fn parse_serve<I, T>(args: I) -> Result<ServerConfig, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command()
        .try_get_matches_from(args)
        .map_err(CliError::Clap)?;
    let Some(("serve", serve)) = matches.subcommand() else {
        // `serve` is the only subcommand and one is required, so clap has
        // already rejected anything else.
        return Err(CliError::Clap(Cli::command().error(
            clap::error::ErrorKind::MissingSubcommand,
            "a subcommand is required",
        )));
    };
    layers(serve)?.resolve().map_err(CliError::Config)
}

/// Flag, environment and file layers, merged by precedence.
fn layers(matches: &ArgMatches) -> Result<RawSettings, CliError> {
    let mut flags = RawSettings::default();
    let mut env = RawSettings::default();
    for setting in Setting::ALL {
        let Some(value) = matches.get_one::<String>(setting.key()) else {
            continue;
        };
        match matches.value_source(setting.key()) {
            Some(ValueSource::EnvVariable) => {
                // An empty variable counts as unset, so that
                // `STREAMHOUSE_X=${X:-}` in a compose file means "default".
                if !value.is_empty() {
                    env.set(setting, value.clone(), Origin::Env(setting.env()));
                }
            }
            _ => flags.set(setting, value.clone(), Origin::Flag),
        }
    }
    let file = match matches.get_one::<PathBuf>("config") {
        Some(path) if !path.as_os_str().is_empty() => {
            load_config_file(path).map_err(CliError::Config)?
        }
        _ => RawSettings::default(),
    };
    Ok(flags.or(env).or(file))
}
