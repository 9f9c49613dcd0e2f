//! How sqlx errors become [`MetadataError`]s: which failures are worth a
//! retry is decided here, from the driver's error, and nowhere else.

use crate::error::MetadataError;

impl MetadataError {
    /// Classifies a database error from `operation`: connection trouble and
    /// lock conflicts are retriable, everything else is not.
    pub(crate) fn from_sqlx(operation: &'static str, source: sqlx::Error) -> Self {
        if is_transient(&source) {
            MetadataError::unavailable(operation, source)
        } else {
            MetadataError::database(operation, source)
        }
    }

    pub(crate) fn from_migrate(source: sqlx::migrate::MigrateError) -> Self {
        MetadataError::Migration(Box::new(source))
    }
}

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            matches!(
                code.as_deref(),
                // PostgreSQL: serialization failure, deadlock, connection
                // exceptions (08xxx), admin shutdown, cannot connect now.
                Some("40001" | "40P01" | "57P01" | "57P02" | "57P03")
            ) || code.as_deref().is_some_and(|c| c.starts_with("08"))
                // SQLite: SQLITE_BUSY and SQLITE_LOCKED, with extended codes.
                || code
                    .as_deref()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_retriable_and_bad_queries_are_not() {
        assert!(MetadataError::from_sqlx("ping", sqlx::Error::PoolTimedOut).is_retriable());
        assert!(!MetadataError::from_sqlx("ping", sqlx::Error::RowNotFound).is_retriable());
    }
}
