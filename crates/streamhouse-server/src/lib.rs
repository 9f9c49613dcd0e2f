//! The `streamhouse` server: one agent running the storage engine, the
//! Kafka protocol server and an HTTP API (health, readiness, Prometheus
//! metrics and a JSON REST API) in one process.
//!
//! The binary is `streamhouse serve` (and `streamhouse user set NAME
//! --password-stdin | delete NAME | list`, which manage users in the
//! metadata store before any agent runs, and `streamhouse check`, which
//! checks the stored data against the metadata with no agent running); tests and embedders use
//! [`Server::start`] (or [`Server::start_with_components`] with a metadata
//! store and object storage they built) and stop it with
//! [`RunningServer::shutdown`], which answers every buffered append before
//! it returns.
//!
//! # Configuration
//!
//! Each setting comes from, in order of precedence (the first that is set
//! wins):
//!
//! 1. its flag (`--kafka-listen 0.0.0.0:9092`),
//! 2. its environment variable (`STREAMHOUSE_KAFKA_LISTEN=0.0.0.0:9092`;
//!    an empty variable counts as unset),
//! 3. the TOML file given by `--config FILE` or `STREAMHOUSE_CONFIG`
//!    (`kafka_listen = "0.0.0.0:9092"`; unknown keys are an error;
//!    relative paths are relative to the working directory),
//! 4. the default.
//!
//! Every setting is declared once, in the table of [`Setting`]; `streamhouse
//! serve --help` and the README list them all with their defaults.
//!
//! Other variables read: `RUST_LOG` (log filter, default `info`); for
//! `s3://` object stores `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and `AWS_REGION` (default
//! `us-east-1`). Port 0 binds a free port; the advertised Kafka port is
//! always the bound one. The Kafka node id is a stable non-negative hash of
//! the agent id.
//!
//! A bad value ends the binary with exit code 2 and one line on stderr that
//! names the flag, e.g. `error: --kafka-listen: "abc" is not HOST:PORT`
//! (with `(from STREAMHOUSE_KAFKA_LISTEN)` or `(from FILE)` when the value
//! did not come from the flag). A store that cannot be reached at startup
//! ends it with exit code 1 and one line naming `--metadata` or
//! `--object-store`. SIGINT or SIGTERM shut down cleanly (exit 0); a second
//! signal exits at once.
//!
//! # HTTP API
//!
//! `GET /health`, `GET /ready`, `GET /metrics`, and under `/api/v1`:
//! topics (`GET`/`POST /topics`, `GET`/`DELETE /topics/{name}`), produce
//! (`POST /topics/{name}/records`), consume
//! (`GET /topics/{name}/partitions/{p}/records`), segment rows
//! (`GET /topics/{name}/partitions/{p}/segments`) and consumer groups
//! (`GET /groups`, `GET`/`DELETE /groups/{group}`), SCRAM users (`GET
//! /users`, `PUT`/`DELETE /users/{name}`) and ACLs (`GET`/`POST`/`DELETE
//! /acls`). With a SASL listener or `--authorizer acl`, `/api/v1` needs
//! HTTP Basic credentials (401 without) and each route the ACL of the
//! Kafka operation it amounts to (403 without). Errors are always
//! `{"error":{"code","message"}}`. Record bytes travel as UTF-8 text or
//! base64 (`"encoding"`); a read that asks for UTF-8 returns any record
//! whose bytes are not valid UTF-8 in base64, marked by that record's own
//! `"encoding": "base64"`, so nothing is lost or replaced.

mod check;
mod cli;
mod config;
mod error;
mod http;
mod readiness;
mod server;
mod users;

pub use check::{CheckCommandError, report_lines, run_check};
pub use cli::{
    BackendArgs, CheckArgs, Cli, CliError, Command, Invocation, ServeArgs, StoreArgs, UserAction,
    UserArgs, UserCommand, UserCommandArgs, parse_command, parse_serve,
};
pub use config::{
    ConfigError, DEFAULT_DATA_DIR, DEFAULT_HTTP_LISTEN, DEFAULT_KAFKA_LISTEN,
    DEFAULT_MAX_BODY_BYTES, FLUSH_INTERVAL_MS_RANGE, HostPort, KafkaListenAddress, Kind, Origin,
    RawSettings, ServerConfig, Setting, check_metadata_url, check_object_store_url,
    load_config_file, redact_url,
};
pub use error::ServerError;
pub use server::{RunningServer, Server};
pub use users::{UserCommandError, read_password, run_user_command};
