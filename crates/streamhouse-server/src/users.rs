//! `streamhouse user set|delete|list`: users managed directly in the
//! metadata store, through the storage engine's own operations, with no
//! agent running — how the first administrator comes to exist.
//!
//! The password arrives on standard input and goes nowhere but into
//! PBKDF2: it is never printed, logged or part of an error.

use std::io::BufRead;

use streamhouse_storage::{ObjectStorage, StorageConfig, StorageEngine};

use crate::cli::{UserAction, UserCommand};
use crate::config::redact_url;
use crate::error::ServerError;

/// Longest password line read from standard input.
const MAX_PASSWORD_BYTES: usize = 4096;

/// Why a `streamhouse user` command failed; one line for stderr.
#[derive(Debug, thiserror::Error)]
pub enum UserCommandError {
    #[error("cannot read the password from standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("the password on standard input is empty")]
    EmptyPassword,
    #[error("the password on standard input is longer than {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("user {name:?} has no {what} credential")]
    NotFound { name: String, what: String },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Storage(#[from] streamhouse_storage::StorageError),
}

/// Reads one line (the password) from `input`; the line break is not part
/// of it, and an empty password is refused.
pub fn read_password<R: BufRead>(input: &mut R) -> Result<String, UserCommandError> {
    let mut line = String::new();
    std::io::Read::take(&mut *input, MAX_PASSWORD_BYTES as u64 + 2)
        .read_line(&mut line)
        .map_err(UserCommandError::Stdin)?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserCommandError::PasswordTooLong);
    }
    if password.is_empty() {
        return Err(UserCommandError::EmptyPassword);
    }
    Ok(password.to_owned())
}

/// Runs `command` against the metadata store its configuration names;
/// what it did (or the users, for `list`) is written to `out`. The
/// password of `set` is read from `input`.
pub async fn run_user_command(
    command: UserCommand,
    input: &mut impl BufRead,
    out: &mut impl std::io::Write,
) -> Result<(), UserCommandError> {
    // The password first: a wrong one should not touch the store.
    let password = match &command.action {
        UserAction::Set { .. } => Some(read_password(input)?),
        _ => None,
    };
    let metadata_url = command.config.metadata_url();
    let metadata = streamhouse_metadata::open(&metadata_url)
        .await
        .map_err(|source| ServerError::Metadata {
            url: redact_url(&metadata_url),
            source,
        })?;
    // No object is read or written: users live in the metadata store.
    let engine = StorageEngine::start(metadata, ObjectStorage::memory(), StorageConfig::default());
    let result = act(&engine, command.action, password.as_deref(), out).await;
    engine.shutdown().await;
    result
}

async fn act(
    engine: &StorageEngine,
    action: UserAction,
    password: Option<&str>,
    out: &mut impl std::io::Write,
) -> Result<(), UserCommandError> {
    let write = |out: &mut dyn std::io::Write, line: String| {
        writeln!(out, "{line}").map_err(UserCommandError::Stdin)
    };
    match action {
        UserAction::Set {
            name,
            mechanisms,
            iterations,
        } => {
            let password = password.unwrap_or_default();
            for mechanism in mechanisms {
                engine
                    .set_password(&name, password, mechanism, iterations)
                    .await?;
                write(
                    out,
                    format!("set {mechanism} credential of user {name} ({iterations} iterations)"),
                )?;
            }
        }
        UserAction::Delete { name, mechanisms } => {
            let mut deleted = 0;
            for mechanism in &mechanisms {
                if engine.delete_scram_credential(&name, *mechanism).await? {
                    deleted += 1;
                    write(
                        out,
                        format!("deleted {mechanism} credential of user {name}"),
                    )?;
                }
            }
            if deleted == 0 {
                let what = match mechanisms.as_slice() {
                    [one] => one.to_string(),
                    _ => "SCRAM".into(),
                };
                return Err(UserCommandError::NotFound { name, what });
            }
        }
        UserAction::List => {
            for user in engine.scram_users().await? {
                let credentials: Vec<String> = user
                    .credentials
                    .iter()
                    .map(|(mechanism, iterations)| format!("{mechanism}:{iterations}"))
                    .collect();
                write(out, format!("{} {}", user.name, credentials.join(" ")))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_password_is_one_line_without_its_line_break() {
        let read = |text: &str| read_password(&mut text.as_bytes());
        assert_eq!(read("s3cret\n").unwrap(), "s3cret");
        assert_eq!(read("s3cret\r\n").unwrap(), "s3cret");
        assert_eq!(read("s3cret").unwrap(), "s3cret");
        assert_eq!(read(" spaced out \nsecond line\n").unwrap(), " spaced out ");
        assert!(matches!(read("\n"), Err(UserCommandError::EmptyPassword)));
        assert!(matches!(read(""), Err(UserCommandError::EmptyPassword)));
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            read(&long),
            Err(UserCommandError::PasswordTooLong)
        ));
        assert_eq!(
            read(&"x".repeat(MAX_PASSWORD_BYTES)).unwrap().len(),
            MAX_PASSWORD_BYTES
        );
    }
}
