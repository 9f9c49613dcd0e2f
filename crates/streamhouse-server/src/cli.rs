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
use clap::{Arg, ArgMatches, Args, CommandFactory, Parser, Subcommand};

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

impl Args for ServeArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let config = Arg::new("config")
            .long("config")
            .env("STREAMHOUSE_CONFIG")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML file with settings; flags and environment variables override it");
        command
            .arg(config)
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
    for &setting in Setting::ALL {
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
    let file = match matches.get_one::<PathBuf>("config") {
        Some(path) if !path.as_os_str().is_empty() => {
            load_config_file(path).map_err(CliError::Config)?
        }
        _ => RawSettings::default(),
    };
    Ok(flags.or(env).or(file))
}
