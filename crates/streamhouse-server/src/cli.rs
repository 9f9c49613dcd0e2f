//! The command line of the `streamhouse` binary: `streamhouse serve` and
//! its flags, each of which may also come from the environment or a TOML
//! file; the offline `streamhouse user set|delete|list`, which takes
//! serve's `--config`, `--data-dir` and `--metadata` to find the store; and
//! the offline `streamhouse check`, which also takes `--object-store`.
//!
//! clap only collects strings here; every value is checked by
//! [`crate::config`], so a bad value gets the same one-line message whether
//! it came from a flag, a variable or the file. Precedence: flag >
//! environment > `--config` file > default.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use streamhouse_core::security::ScramMechanism;
use streamhouse_storage::DEFAULT_SCRAM_ITERATIONS;

use crate::config::{
    ConfigError, Kind, Origin, RawSettings, ServerConfig, Setting, load_config_file,
};

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
    /// Manage users (SCRAM credentials) directly in the metadata store,
    /// with no agent running: how the first administrator is created.
    User(UserArgs),
    /// Check stored data against the metadata store, with no agent running.
    ///
    /// Segment rows must tile each partition from the log start to the high
    /// watermark, every object must exist, and every segment's CRC and
    /// records must match its row. Prints a summary line and each problem;
    /// exit code 0 when consistent, 1 when not, 2 when the stores cannot be
    /// used.
    Check(CheckArgs),
}

/// `streamhouse check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub backends: BackendArgs,
}

/// `streamhouse user …`.
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserCommandArgs,
}

/// The actions of `streamhouse user`.
#[derive(Debug, Subcommand)]
pub enum UserCommandArgs {
    /// Create or replace a user's credentials; the password is read from
    /// one line of standard input.
    Set {
        /// The user name (the principal is User:NAME).
        name: String,
        /// Read the password from standard input (the only way; it never
        /// appears in the process list or shell history).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Only this mechanism [default: both SCRAM-SHA-256 and SCRAM-SHA-512]
        #[arg(long, value_name = "MECHANISM", value_parser = parse_mechanism)]
        mechanism: Option<ScramMechanism>,
        /// PBKDF2 iterations, 4096-16384
        #[arg(long, value_name = "N", default_value_t = DEFAULT_SCRAM_ITERATIONS,
              value_parser = clap::value_parser!(u32).range(4096..=16384))]
        iterations: u32,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user's credentials.
    Delete {
        name: String,
        /// Only this mechanism [default: every mechanism]
        #[arg(long, value_name = "MECHANISM", value_parser = parse_mechanism)]
        mechanism: Option<ScramMechanism>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users and their mechanisms and iterations (never keys).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_mechanism(name: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::from_name(name)
        .ok_or_else(|| format!("{name:?} is not SCRAM-SHA-256 or SCRAM-SHA-512"))
}

/// The settings that locate the metadata store, as `serve` takes them
/// (flag, environment, `--config` file).
#[derive(Debug, Clone)]
pub struct StoreArgs {
    config: Option<PathBuf>,
    /// Flags over environment, of [`STORE_SETTINGS`] only.
    given: RawSettings,
}

/// The settings `streamhouse user` takes as flags.
const STORE_SETTINGS: &[Setting] = &[Setting::DataDir, Setting::Metadata];

/// The settings `streamhouse check` takes as flags: the metadata store and
/// the object store.
const BACKEND_SETTINGS: &[Setting] = &[Setting::DataDir, Setting::Metadata, Setting::ObjectStore];

impl StoreArgs {
    /// The configuration: these flags and variables over the `--config`
    /// file over the defaults.
    pub fn resolve(&self) -> Result<ServerConfig, CliError> {
        let file = match &self.config {
            Some(path) if !path.as_os_str().is_empty() => {
                load_config_file(path).map_err(CliError::Config)?
            }
            _ => RawSettings::default(),
        };
        self.given
            .clone()
            .or(file)
            .resolve()
            .map_err(CliError::Config)
    }

    fn from_matches(matches: &ArgMatches, settings: &[Setting]) -> Self {
        let (flags, env) = given_layers(matches, settings);
        Self {
            config: matches.get_one::<PathBuf>("config").cloned(),
            given: flags.or(env),
        }
    }

    fn augment(command: clap::Command, settings: &[Setting]) -> clap::Command {
        command
            .arg(config_arg())
            .args(settings.iter().map(|&setting| setting_arg(setting)))
    }
}

impl clap::FromArgMatches for StoreArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self::from_matches(matches, STORE_SETTINGS))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for StoreArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        Self::augment(command, STORE_SETTINGS)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// The settings that locate the metadata store and the object store, as
/// `serve` takes them (flag, environment, `--config` file).
#[derive(Debug, Clone)]
pub struct BackendArgs(StoreArgs);

impl BackendArgs {
    /// The configuration: these flags and variables over the `--config`
    /// file over the defaults.
    pub fn resolve(&self) -> Result<ServerConfig, CliError> {
        self.0.resolve()
    }
}

impl clap::FromArgMatches for BackendArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(StoreArgs::from_matches(matches, BACKEND_SETTINGS)))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for BackendArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        StoreArgs::augment(command, BACKEND_SETTINGS)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// What `streamhouse user` was asked to do, its configuration resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCommand {
    pub config: ServerConfig,
    pub action: UserAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAction {
    Set {
        name: String,
        mechanisms: Vec<ScramMechanism>,
        iterations: u32,
    },
    Delete {
        name: String,
        mechanisms: Vec<ScramMechanism>,
    },
    List,
}

/// A command line of the binary, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Serve(ServerConfig),
    User(UserCommand),
    /// `streamhouse check` on the stores this configuration names.
    Check(ServerConfig),
}

fn mechanisms(mechanism: Option<ScramMechanism>) -> Vec<ScramMechanism> {
    mechanism.map_or_else(|| ScramMechanism::ALL.to_vec(), |m| vec![m])
}

/// Parses `args` (including the program name) and the environment into
/// what the binary should do.
pub fn parse_command<I, T>(args: I) -> Result<Invocation, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command()
        .try_get_matches_from(args)
        .map_err(CliError::Clap)?;
    match matches.subcommand() {
        Some(("check", check)) => {
            let args = CheckArgs::from_arg_matches(check).map_err(CliError::Clap)?;
            Ok(Invocation::Check(args.backends.resolve()?))
        }
        Some(("user", user)) => {
            let args = UserArgs::from_arg_matches(user).map_err(CliError::Clap)?;
            let (action, store) = match args.action {
                UserCommandArgs::Set {
                    name,
                    mechanism,
                    iterations,
                    store,
                    ..
                } => (
                    UserAction::Set {
                        name,
                        mechanisms: mechanisms(mechanism),
                        iterations,
                    },
                    store,
                ),
                UserCommandArgs::Delete {
                    name,
                    mechanism,
                    store,
                } => (
                    UserAction::Delete {
                        name,
                        mechanisms: mechanisms(mechanism),
                    },
                    store,
                ),
                UserCommandArgs::List { store } => (UserAction::List, store),
            };
            Ok(Invocation::User(UserCommand {
                config: store.resolve()?,
                action,
            }))
        }
        _ => parse_serve_matches(&matches).map(Invocation::Serve),
    }
}

/// Flags of `streamhouse serve`: `--config` and one flag per setting of the
/// table in [`crate::config::Setting`]. Every flag can also be set with the
/// environment variable shown, or in the `--config` TOML file under the
/// flag's name in snake_case (`kafka_listen = "0.0.0.0:9092"`).
#[derive(Debug, Clone)]
pub struct ServeArgs {
    pub config: Option<PathBuf>,
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            config: matches.get_one::<PathBuf>("config").cloned(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

fn config_arg() -> Arg {
    Arg::new("config")
        .long("config")
        .env("STREAMHOUSE_CONFIG")
        .value_name("FILE")
        .value_parser(clap::value_parser!(PathBuf))
        .help("TOML file with settings; flags and environment variables override it")
}

impl Args for ServeArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        command
            .arg(config_arg())
            .args(Setting::ALL.iter().map(|&setting| setting_arg(setting)))
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// clap only collects the string; [`RawSettings::resolve`] checks it.
fn setting_arg(setting: Setting) -> Arg {
    let arg = Arg::new(setting.key())
        .long(&setting.flag()[2..])
        .env(setting.env())
        .value_name(setting.value_name())
        .help(format!(
            "{} [default: {}]",
            setting.help(),
            setting.default_text()
        ));
    match setting.kind() {
        // Numeric flags allow negative numbers so that `--cache-bytes -1`
        // reaches the range check (and its message naming the flag)
        // instead of clap reading `-1` as an unknown flag.
        Kind::Number => arg.allow_negative_numbers(true),
        // Values of a repeated flag are joined with commas, the form the
        // variable and the file's string take.
        Kind::List => arg.action(clap::ArgAction::Append),
        // `--http-tls` alone means `--http-tls true`.
        Kind::Bool => arg.num_args(0..=1).default_missing_value("true"),
        Kind::Text => arg,
    }
}

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
                let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
                let first = lines.next().unwrap_or("error: invalid arguments");
                // clap lists missing arguments on the lines after the first.
                if e.kind() == clap::error::ErrorKind::MissingRequiredArgument {
                    let missing: Vec<&str> =
                        lines.take_while(|l| !l.starts_with("Usage:")).collect();
                    return Some(format!("{first} {}", missing.join(", ")));
                }
                Some(first.to_string())
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
    parse_serve_matches(&matches)
}

fn parse_serve_matches(matches: &ArgMatches) -> Result<ServerConfig, CliError> {
    let Some(("serve", serve)) = matches.subcommand() else {
        return Err(CliError::Clap(Cli::command().error(
            clap::error::ErrorKind::InvalidSubcommand,
            "this is not `streamhouse serve`",
        )));
    };
    layers(serve)?.resolve().map_err(CliError::Config)
}

/// Flag, environment and file layers, merged by precedence.
fn layers(matches: &ArgMatches) -> Result<RawSettings, CliError> {
    let (flags, env) = given_layers(matches, Setting::ALL);
    let file = match matches.get_one::<PathBuf>("config") {
        Some(path) if !path.as_os_str().is_empty() => {
            load_config_file(path).map_err(CliError::Config)?
        }
        _ => RawSettings::default(),
    };
    Ok(flags.or(env).or(file))
}

/// The flag and environment layers of `settings`.
fn given_layers(matches: &ArgMatches, settings: &[Setting]) -> (RawSettings, RawSettings) {
    let mut flags = RawSettings::default();
    let mut env = RawSettings::default();
    for &setting in settings {
        let Some(values) = matches.get_many::<String>(setting.key()) else {
            continue;
        };
        let value = &values.map(String::as_str).collect::<Vec<_>>().join(",");
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
    (flags, env)
}
