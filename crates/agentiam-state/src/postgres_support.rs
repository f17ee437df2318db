//! What every synchronous PostgreSQL client of agentiam needs to judge its connection: the
//! guard's `PostgresState` here and the broker's `PostgresStore` use these, so a lost
//! connection is recognised, and a schema name quoted, the same way in both.

use std::time::Duration;

use postgres::Client;
use postgres::error::Severity;

/// How long a connection that failed for a reason not from the server gets to answer a probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `name` as a quoted SQL identifier (`"a""b"` for `a"b`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether `e`, from a call on `client`, means the connection is no longer usable and must be
/// replaced (rather than the statement having failed on a healthy connection).
pub fn connection_is_broken(client: &mut Client, e: &postgres::Error) -> bool {
    if e.is_closed() || client.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        // FATAL and PANIC end the session; class 57P is the server shutting down or
        // terminating this backend.
        return matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic)
        ) || db.code().code().starts_with("57P");
    }
    // Not from the server (I/O, protocol, conversion): ask the connection itself.
    client.is_valid(PROBE_TIMEOUT).is_err()
}
