//! PostgreSQL: positions are LSNs on a timeline of one cluster (system identifier); replicas
//! are hot standbys; sessions are made read-only by `default_transaction_read_only`.

use rwsplit_core::{CausalToken, Lsn, PgPosition};
use rwsplit_monitor::sql::postgres as sql;
#[cfg(feature = "postgres")]
use sea_orm::ConnectOptions;
use sea_orm::{DatabaseConnection, DbBackend, DbErr, Statement};

#[cfg(feature = "postgres")]
use super::Pooling;
use super::rows::{OneRow, parse, query_on, query_one, query_one_stmt, text, unreadable};
use super::server::Server;
use super::{ServerError, Waited};

/// See [`super::Product::capture`]. The system identifier comes from the monitor or one extra
/// query (it reads the control file), and is cached per node.
pub(super) async fn capture<O: OneRow>(
    on: &mut O,
    system_id: u64,
) -> Result<(CausalToken, u64), DbErr> {
    let system_id = if system_id == 0 {
        let row = query_on(on, DbBackend::Postgres, sql::SYSTEM_ID, "system_id").await?;
        parse::<u64>(&row, "system_id")?
    } else {
        system_id
    };
    let row = query_on(on, DbBackend::Postgres, sql::CAPTURE, "lsn").await?;
    let lsn = parse::<Lsn>(&row, "lsn")?;
    let timeline = parse::<u32>(&row, "timeline")?;
    Ok((CausalToken::new(PgPosition::new(system_id, timeline, lsn)), system_id))
}

/// Waits in the standby, for at most `max`, until it has replayed `want` ([`sql::WAIT_REPLAYED`]:
/// one round trip, the server looking every tenth of a millisecond). A server that is not a
/// standby (promoted, or a primary) answers at once and is not trusted here.
pub(super) async fn replayed(
    conn: &DatabaseConnection,
    want: Lsn,
    max: std::time::Duration,
) -> Result<Waited, DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql::WAIT_REPLAYED,
        [want.to_string().into(), max.as_secs_f64().into()],
    );
    let row = query_one_stmt(conn, stmt, "pg_last_wal_replay_lsn").await?;
    // NULL: not a standby (promoted, or a primary): it cannot be trusted here.
    let Some(replayed) = text(&row, "lsn") else { return Ok(Waited::TimedOut) };
    let lsn =
        replayed.parse::<Lsn>().map_err(|e| unreadable("pg_last_wal_replay_lsn", &replayed, e))?;
    Ok(if lsn >= want { Waited::CaughtUp } else { Waited::TimedOut })
}

/// What the server says it is.
pub(super) async fn server(conn: &DatabaseConnection) -> Result<Server, DbErr> {
    let row = query_one(conn, sql::VERSION, "version").await?;
    Ok(Server::postgres(
        text(&row, "num").as_deref().unwrap_or(""),
        text(&row, "version").as_deref().unwrap_or(""),
    ))
}

/// See [`super::server_error`]: by SQLSTATE, and for three codes that also mean other things,
/// by the server's (English) message too. A hot standby refuses what would write with 25006
/// (`cannot execute INSERT in a read-only transaction`), and, for what only shows it writes
/// deeper down, with 55000 (`recovery is in progress`, e.g. a WAL function), XX000 (`cannot
/// assign TransactionIds during recovery`: a view over `pg_current_xact_id()`) or 0A000
/// (`cannot use serializable mode in a hot standby`). Those three codes are matched only with
/// their message: 55000 is also `currval` before `nextval`, which the primary refuses too. A
/// server whose `lc_messages` is not English has those refusals seen as ordinary errors.
pub(super) fn server_error(code: &str, message: &str) -> Option<ServerError> {
    match code {
        "55000" | "XX000" if message.contains("during recovery") => Some(ServerError::ReadOnly),
        "55000" if message.contains("recovery is in progress") => Some(ServerError::ReadOnly),
        "0A000" if message.contains("in a hot standby") => Some(ServerError::ReadOnly),
        // Class 08 connection exceptions; 57P01–57P03 admin shutdown, crash shutdown, cannot
        // connect now.
        c if c.starts_with("08") => Some(ServerError::GoingAway),
        "57P01" | "57P02" | "57P03" => Some(ServerError::GoingAway),
        "25006" => Some(ServerError::ReadOnly),
        "57014" => Some(ServerError::Cancelled),
        "40001" => Some(ServerError::Conflict),
        "42P01" => Some(ServerError::NoSuchTable),
        "53300" => Some(ServerError::TooManyConnections),
        _ => None,
    }
}

/// The start of every use of a pooled connection in transaction pooling, one round trip. sqlx
/// names every statement it prepares (`sqlx_s_<n>`, counted per client connection) even with
/// its cache off, and leaves it on the server connection; another client's `sqlx_s_1` there
/// would make ours fail with "already exists". `DEALLOCATE ALL` inside the transaction clears
/// them (SQLAlchemy's recipe for asyncpg behind PgBouncer does the same).
#[cfg(feature = "postgres")]
const BEGIN: &str = "BEGIN; DEALLOCATE ALL";
/// [`BEGIN`], read-only.
#[cfg(feature = "postgres")]
const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY; DEALLOCATE ALL";
/// The end: commit, and leave no statement of ours on the server connection for the next
/// client (one simple query, so PgBouncer keeps the server connection for both).
#[cfg(feature = "postgres")]
const END: &str = "COMMIT; DEALLOCATE ALL";

#[cfg(feature = "postgres")]
pub(super) fn no_statement_cache(opts: &mut ConnectOptions) {
    opts.map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0));
}

#[cfg(feature = "postgres")]
pub(super) fn frame_monitor(opts: &mut ConnectOptions) {
    opts.map_sqlx_postgres_pool_opts(|o| {
        o.after_connect(|conn, _| Box::pin(pg(conn, BEGIN)))
            .before_acquire(|conn, _| Box::pin(super::keep(pg(conn, BEGIN))))
            .after_release(|conn, _| Box::pin(super::keep(pg(conn, END))))
    });
}

/// [`Pooling::Direct`]: the startup parameter, free per connection and statement (it replaces
/// any `map_sqlx_postgres_opts` hook); [`Pooling::Session`]: a `SET` per new connection;
/// [`Pooling::Transaction`]: every use a read-only transaction.
#[cfg(feature = "postgres")]
pub(super) fn make_read_only(opts: &mut ConnectOptions, pooling: Pooling) {
    match pooling {
        Pooling::Direct => {
            opts.map_sqlx_postgres_opts(|o| o.options([("default_transaction_read_only", "on")]));
        }
        Pooling::Session => {
            opts.map_sqlx_postgres_pool_opts(|o| {
                o.after_connect(|conn, _| {
                    Box::pin(pg(conn, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))
                })
            });
        }
        Pooling::Transaction => {
            opts.map_sqlx_postgres_pool_opts(|o| {
                o.after_connect(|conn, _| Box::pin(pg(conn, BEGIN_READ_ONLY)))
                    .before_acquire(|conn, _| Box::pin(super::keep(pg(conn, BEGIN_READ_ONLY))))
                    .after_release(|conn, _| Box::pin(super::keep(pg(conn, END))))
            });
        }
    }
}

/// Finds the one statement with text `sql` that this database user has had running on the
/// server for at most `ran` (the losing attempt of a hedged read, begun that long ago) and
/// cancels it, in one statement: more than one such statement (the same read, begun about
/// then on other connections), or none (it has ended), and nothing is cancelled. The server
/// keeps a statement's first `track_activity_query_size` bytes (1 kB by default): a longer one
/// is matched by that beginning.
#[cfg(feature = "postgres")]
const CANCEL: &str = "SELECT pg_cancel_backend(pid) AS cancelled FROM (\
    SELECT pid, count(*) OVER () AS matching FROM pg_stat_activity \
    WHERE pid <> pg_backend_pid() AND datname = current_database() AND usename = current_user \
    AND state = 'active' AND (query = $1 OR (octet_length(query) >= \
    (SELECT setting::int FROM pg_settings WHERE name = 'track_activity_query_size') - 4 \
    AND starts_with($1, query))) \
    AND clock_timestamp() - query_start <= make_interval(secs => $2)) m \
    WHERE matching = 1";

/// See [`super::Product::cancel`]: [`CANCEL`] on a connection of its own, opened with the
/// pool's options (`pool`'s connections may all be waiting on the node) and closed after.
#[cfg(feature = "postgres")]
pub(super) async fn cancel(
    pool: &sea_orm::sqlx::PgPool,
    sql: &str,
    ran: std::time::Duration,
) -> Result<bool, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::{Connection, Row};
    let options = pool.connect_options();
    let mut conn = sea_orm::sqlx::PgConnection::connect_with(&options).await?;
    let row = sea_orm::sqlx::query(CANCEL)
        .bind(sql)
        .bind(ran.as_secs_f64())
        .fetch_optional(&mut conn)
        .await;
    let _ = conn.close().await;
    Ok(match row? {
        Some(r) => r.try_get::<bool, _>("cancelled")?,
        None => false,
    })
}

/// Runs one fixed statement (simple protocol: no prepared statement) on a pooled connection.
#[cfg(feature = "postgres")]
async fn pg(
    conn: &mut sea_orm::sqlx::PgConnection,
    sql: &'static str,
) -> Result<(), sea_orm::sqlx::Error> {
    sea_orm::sqlx::Executor::execute(conn, sql).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("08006", Some(ServerError::GoingAway))]
    #[case("57P01", Some(ServerError::GoingAway))]
    #[case("25006", Some(ServerError::ReadOnly))]
    #[case("57014", Some(ServerError::Cancelled))]
    #[case("53300", Some(ServerError::TooManyConnections))]
    #[case::tx_id_on_a_standby(
        "XX000:cannot assign TransactionIds during recovery",
        Some(ServerError::ReadOnly)
    )]
    #[case::wal_function_on_a_standby("55000:recovery is in progress", Some(ServerError::ReadOnly))]
    #[case::serializable_on_a_standby(
        "0A000:cannot use serializable mode in a hot standby",
        Some(ServerError::ReadOnly)
    )]
    #[case::currval_before_nextval(
        "55000:currval of sequence \"s\" is not yet defined in this session",
        None
    )]
    #[case::other_internal_error("XX000:could not open file", None)]
    #[case("40001", Some(ServerError::Conflict))]
    #[case("42P01", Some(ServerError::NoSuchTable))]
    #[case("23505", None)]
    #[case("", None)]
    fn sqlstates(#[case] code: &str, #[case] meaning: Option<ServerError>) {
        let (code, message) = code.split_once(':').unwrap_or((code, ""));
        assert_eq!(server_error(code, message), meaning);
    }
}
