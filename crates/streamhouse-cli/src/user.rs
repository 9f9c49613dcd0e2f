//! `streamctl user set|delete|list`: SCRAM users of the cluster, as
//! Kafka's `kafka-configs.sh --entity-type users` manages them.
//!
//! The password is read from stdin (`--password-stdin`), never from the
//! command line where `ps` and shell history would show it.
//!
//! JSON output: `list` prints the server's users
//! (`[{"name","credentials":[{"mechanism","iterations"}]}]`), `set` the
//! user as stored, `delete` `{"deleted": NAME, "mechanism": M or null}`.

use std::io::Read as _;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use streamhouse_api::{SetUser, User};

use crate::client::ApiClient;
use crate::output::{OutputFormat, print_json, print_line, table};

/// Longest password read from stdin.
const MAX_PASSWORD_BYTES: u64 = 1024;

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user or change its password.
    Set {
        /// User name (the principal is `User:NAME`).
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Set only this mechanism's credential (default: both).
        #[arg(long, value_name = "MECHANISM", value_parser = ["SCRAM-SHA-256", "SCRAM-SHA-512"], ignore_case = true)]
        mechanism: Option<String>,
        /// PBKDF2 iterations, 4096-16384 (default: the server's, 8192).
        #[arg(long, value_name = "N")]
        iterations: Option<u32>,
    },
    /// Delete a user's credentials (all, or one mechanism's).
    Delete {
        /// User name.
        name: String,
        /// Delete only this mechanism's credential.
        #[arg(long, value_name = "MECHANISM", value_parser = ["SCRAM-SHA-256", "SCRAM-SHA-512"], ignore_case = true)]
        mechanism: Option<String>,
    },
    /// List users with their mechanisms and iterations.
    List,
}

pub(crate) async fn run(
    client: &ApiClient,
    command: UserCommand,
    output: OutputFormat,
) -> Result<()> {
    match command {
        UserCommand::Set {
            name,
            password_stdin: _,
            mechanism,
            iterations,
        } => {
            let password = read_password(std::io::stdin().lock())?;
            let request = SetUser {
                password,
                mechanism: mechanism.map(|m| m.to_ascii_uppercase()),
                iterations,
            };
            let user = client.set_user(&name, &request).await?;
            match output {
                OutputFormat::Json => print_json(&user),
                OutputFormat::Table => print_line(format!(
                    "Set the credentials of user {:?} ({}).",
                    user.name,
                    describe_credentials(&user)
                )),
            }
        }
        UserCommand::Delete { name, mechanism } => {
            let mechanism = mechanism.map(|m| m.to_ascii_uppercase());
            client.delete_user(&name, mechanism.as_deref()).await?;
            match output {
                OutputFormat::Json => {
                    print_json(&json!({ "deleted": name, "mechanism": mechanism }))
                }
                OutputFormat::Table => match mechanism {
                    Some(mechanism) => print_line(format!(
                        "Deleted the {mechanism} credential of user {name:?}."
                    )),
                    None => print_line(format!("Deleted user {name:?}.")),
                },
            }
        }
        UserCommand::List => {
            let users = client.list_users().await?;
            match output {
                OutputFormat::Json => print_json(&users),
                OutputFormat::Table if users.is_empty() => print_line("No users."),
                OutputFormat::Table => {
                    let mut rows = table(["USER", "MECHANISM", "ITERATIONS"]);
                    for user in &users {
                        for credential in &user.credentials {
                            rows.add_row(vec![
                                user.name.clone(),
                                credential.mechanism.clone(),
                                credential.iterations.to_string(),
                            ]);
                        }
                    }
                    print_line(rows)
                }
            }
        }
    }
}

fn describe_credentials(user: &User) -> String {
    user.credentials
        .iter()
        .map(|c| format!("{} with {} iterations", c.mechanism, c.iterations))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first line of `input`, without its line ending.
fn read_password(input: impl std::io::Read) -> Result<String> {
    let mut bytes = Vec::new();
    input
        .take(MAX_PASSWORD_BYTES + 2)
        .read_to_end(&mut bytes)
        .context("reading the password from stdin")?;
    let text = String::from_utf8(bytes).context("the password on stdin is not UTF-8")?;
    let line = text.split('\n').next().unwrap_or_default();
    let password = line.strip_suffix('\r').unwrap_or(line);
    if password.is_empty() {
        bail!("--password-stdin: stdin holds no password (give it on the first line)");
    }
    if password.len() as u64 > MAX_PASSWORD_BYTES {
        bail!("--password-stdin: the password is longer than {MAX_PASSWORD_BYTES} bytes");
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_of_stdin() {
        let read = |input: &str| read_password(input.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(read("s3cret\n").as_deref(), Ok("s3cret"));
        assert_eq!(read("s3cret\r\nignored\n").as_deref(), Ok("s3cret"));
        assert_eq!(read("with space").as_deref(), Ok("with space"));
        assert!(read("").is_err());
        assert!(read("\nsecond").is_err());
        assert!(read(&"x".repeat(2000)).is_err());
    }
}
