//! PostgreSQL: positions are LSNs on a timeline of one cluster (system identifier); replicas
//! are hot standbys; sessions are made read-only by `default_transaction_read_only`.

use rwsplit_core::{CausalToken, Lsn, PgPosition, ReplayPosition};
use rwsplit_monitor::sql::postgres as sql;
use sea_orm::{ConnectOptions, DatabaseConnection, DbBackend, DbErr, Statement};

use super::rows::{OneRow, parse, query_on, query_one, query_one_stmt, text, unreadable};
use super::server::Server;
use super::{Pooling, Seam, ServerError, Waited};

/// PostgreSQL's side of the adapter's seam.
#[derive(Debug, Clone, Copy)]
pub(super) struct Postgres;

impl Seam for Postgres {
    const BACKEND: DbBackend = DbBackend::Postgres;
    const SEAORM_SYSTEM: &'static str = "postgresql";
    const SCHEMES: &'static [&'static str] =
        if cfg!(feature = "postgres") { &["postgres", "postgresql"] } else { &[] };
    const DEFAULT_PORT: u16 = 5432;
    const RUNS_UNDER_PATRONI: bool = true;
    const POOLED_PROBE_UNFRAMED: bool = true;

    /// As a savepoint inside the frame (`open_frame`), which keeps the frame's isolation
    /// level: PostgreSQL refuses `SET TRANSACTION ISOLATION LEVEL` to another one in a
    /// subtransaction.
    fn frame_hosts(isolation: Option<sea_orm::IsolationLevel>) -> bool {
        matches!(isolation, None | Some(sea_orm::IsolationLevel::ReadCommitted))
    }

    async fn capture<O: OneRow>(on: &mut O, system_id: u64) -> Result<(CausalToken, u64), DbErr> {
        capture(on, system_id).await
    }

    async fn wait_for(
        conn: &DatabaseConnection,
        position: &ReplayPosition,
        max: std::time::Duration,
    ) -> Result<Waited, DbErr> {
        match position {
            ReplayPosition::Postgres(want) => replayed(conn, want.lsn(), max).await,
            _ => Ok(Waited::TimedOut),
        }
    }

    async fn server(conn: &DatabaseConnection) -> Result<Server, DbErr> {
        server(conn).await
    }

    fn system_id(position: &ReplayPosition) -> Option<u64> {
        match position {
            ReplayPosition::Postgres(p) => Some(p.system_id()),
            _ => None,
        }
    }

    fn no_statement_cache(opts: &mut ConnectOptions) {
        #[cfg(feature = "postgres")]
        opts.map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0));
        #[cfg(not(feature = "postgres"))]
        let _ = opts;
    }

    fn frame_monitor(opts: &mut ConnectOptions) {
        #[cfg(feature = "postgres")]
        frame_monitor(opts);
        #[cfg(not(feature = "postgres"))]
        let _ = opts;
    }

    fn make_read_only(opts: &mut ConnectOptions, pooling: Pooling, checks_clients: bool) {
        #[cfg(feature = "postgres")]
        make_read_only(opts, pooling, checks_clients);
        #[cfg(not(feature = "postgres"))]
        let _ = (opts, pooling, checks_clients);
    }
}

/// See [`super::Product::capture`]. The system identifier comes from the monitor or one extra
/// query (it reads the control file), and is cached per node.
async fn capture<O: OneRow>(on: &mut O, system_id: u64) -> Result<(CausalToken, u64), DbErr> {
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
async fn replayed(
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
async fn server(conn: &DatabaseConnection) -> Result<Server, DbErr> {
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

/// The start of every use of a pooled connection in transaction pooling: the server connection
/// the pooler lends is rwsplit's until the [`END`]'s `COMMIT`.
#[cfg(feature = "postgres")]
const BEGIN: &str = "BEGIN";
/// [`BEGIN`], read-only.
#[cfg(feature = "postgres")]
const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY";
/// The end of every use: the statements this transaction prepared deallocated, then commit,
/// in one simple query (PgBouncer keeps the server connection for both). sqlx names every
/// statement it prepares (`sqlx_s_<n>`, counted per client connection) even with its cache off,
/// and would leave it on the server connection the pooler lends the next client. Only those
/// are dropped: named `sqlx_s_…` and prepared since this transaction began (`now()`), while
/// the server connection was ours; another client's statements there, prepared before, are
/// not touched (no `DEALLOCATE ALL`). A pooler that names statements itself (PgBouncer 1.21+
/// with `max_prepared_statements`: `PGBOUNCER_…`) keeps its own. Needs PL/pgSQL, there in
/// every database unless dropped.
#[cfg(feature = "postgres")]
const END: &str = "DO $rwsplit$ DECLARE s text; BEGIN \
    FOR s IN SELECT name FROM pg_prepared_statements \
    WHERE prepare_time >= now() AND name LIKE 'sqlx\\_s\\_%' \
    LOOP EXECUTE format('DEALLOCATE %I', s); END LOOP; END $rwsplit$; COMMIT";

#[cfg(feature = "postgres")]
fn frame_monitor(opts: &mut ConnectOptions) {
    opts.map_sqlx_postgres_pool_opts(|o| {
        o.after_connect(|conn, _| Box::pin(open_frame(conn, BEGIN)))
            .before_acquire(|conn, _| Box::pin(super::keep(open_frame(conn, BEGIN))))
            .after_release(|conn, _| Box::pin(super::keep(pg(conn, END))))
    });
}

/// How often a replica's server checks, while it runs a statement of rwsplit's read sessions,
/// that the client is still there (`client_connection_check_interval`, in milliseconds). A
/// hedged read's losing attempt is abandoned by closing its connection ([`crate::send::sending`]);
/// with this setting the server ends that one session's statement by itself within this
/// interval of running again, instead of running it to its end. Nothing is sent to end it, so
/// no other session can be reached: rwsplit never looks a statement up to cancel it. The check
/// is a `poll()` of the session's own socket. Set only where the server has it
/// ([`Server::checks_clients`](super::Server::checks_clients)).
#[cfg(feature = "postgres")]
pub(crate) const CLIENT_CHECK_MS: &str = "250";

/// [`Pooling::Session`]'s `SET` per new connection: read-only.
#[cfg(feature = "postgres")]
const SESSION_READ_ONLY: &str = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY";
/// [`SESSION_READ_ONLY`] and [`CLIENT_CHECK_MS`], in one round trip.
#[cfg(feature = "postgres")]
const SESSION_READ_ONLY_CHECKED: &str = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; \
    SET client_connection_check_interval = 250";
/// [`BEGIN_READ_ONLY`] with [`CLIENT_CHECK_MS`] for this transaction only (`SET LOCAL`: behind
/// a transaction pooler the server connection is rwsplit's only until the `COMMIT`).
#[cfg(feature = "postgres")]
const BEGIN_READ_ONLY_CHECKED: &str =
    "BEGIN READ ONLY; SET LOCAL client_connection_check_interval = 250";

/// [`Pooling::Direct`]: startup parameters, free per connection and statement (they replace
/// any `map_sqlx_postgres_opts` hook); [`Pooling::Session`]: one round trip of `SET`s per new
/// connection; [`Pooling::Transaction`]: every use a read-only transaction. Each also sets
/// [`CLIENT_CHECK_MS`] when the server `checks_clients`.
#[cfg(feature = "postgres")]
fn make_read_only(opts: &mut ConnectOptions, pooling: Pooling, checks_clients: bool) {
    match pooling {
        Pooling::Direct => {
            opts.map_sqlx_postgres_opts(move |o| {
                let o = o.options([("default_transaction_read_only", "on")]);
                if checks_clients {
                    o.options([("client_connection_check_interval", CLIENT_CHECK_MS)])
                } else {
                    o
                }
            });
        }
        Pooling::Session => {
            let setup = if checks_clients { SESSION_READ_ONLY_CHECKED } else { SESSION_READ_ONLY };
            opts.map_sqlx_postgres_pool_opts(move |o| {
                o.after_connect(move |conn, _| Box::pin(pg(conn, setup)))
            });
        }
        Pooling::Transaction => {
            let begin = if checks_clients { BEGIN_READ_ONLY_CHECKED } else { BEGIN_READ_ONLY };
            opts.map_sqlx_postgres_pool_opts(move |o| {
                o.after_connect(move |conn, _| Box::pin(open_frame(conn, begin)))
                    .before_acquire(move |conn, _| Box::pin(super::keep(open_frame(conn, begin))))
                    .after_release(|conn, _| Box::pin(super::keep(pg(conn, END))))
            });
        }
    }
}

/// Opens a use's frame with `begin` ([`BEGIN`] or [`BEGIN_READ_ONLY`]). The first frame on a
/// connection opens through sqlx's transaction manager, so sqlx counts the connection as in a
/// transaction from then on; the frame's [`END`] is sent as a plain statement and sqlx is never
/// told the transaction ended. A transaction the caller begins on the connection (a read-only
/// one routed to this replica) is then a savepoint inside the frame, its `COMMIT` a `RELEASE
/// SAVEPOINT` and its rollback a `ROLLBACK TO SAVEPOINT`: the frame stays open until its
/// [`END`], which deallocates what the caller's transaction prepared on the server connection
/// it was prepared on. (Without this, sqlx's `BEGIN` inside the frame only warned and its
/// `COMMIT` ended the frame's transaction, so the statements it prepared stayed on a server
/// connection PgBouncer then lent to others, whose own `sqlx_s_<n>` collided with them.)
/// In a savepoint the caller cannot change the isolation level, so such a transaction is
/// planned elsewhere ([`super::Product::frame_hosts`]).
#[cfg(feature = "postgres")]
async fn open_frame(
    conn: &mut sea_orm::sqlx::PgConnection,
    begin: &'static str,
) -> Result<(), sea_orm::sqlx::Error> {
    use sea_orm::sqlx::postgres::PgTransactionManager;
    use sqlx_core::transaction::TransactionManager;
    if PgTransactionManager::get_transaction_depth(conn) == 0 {
        let begin = sea_orm::sqlx::SqlSafeStr::into_sql_str(begin);
        PgTransactionManager::begin(conn, Some(begin)).await
    } else {
        pg(conn, begin).await
    }
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
