//! Why a server refused a new connection, in words, from its SQLSTATE (PostgreSQL) or error
//! number (MariaDB): for [`Error::PrimaryUnreachable`](crate::Error::PrimaryUnreachable)'s text.

/// The cause of a server's refusal of a connection (`the database does not exist (SQLSTATE
/// 3D000)`), never its message (which may quote the user or database, but no password).
pub(crate) fn connect_refusal(db: &dyn sea_orm::sqlx::error::DatabaseError) -> String {
    // MariaDB's error number says more than its SQLSTATE (42000 is both "unknown database" and
    // "access denied to the database").
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        let kind = match my.number() {
            1045 => "access denied (wrong user or password)",
            1044 => "access denied to the database",
            1049 => "the database does not exist",
            1040 => "the server has too many connections",
            _ => "the server refused the connection",
        };
        return format!("{kind} (error {})", my.number());
    }
    let code = db.code().map(std::borrow::Cow::into_owned).unwrap_or_default();
    let kind = match code.as_str() {
        "28P01" => "password authentication failed",
        "28000" => "the server refused the login (no pg_hba.conf entry, or not permitted)",
        "3D000" => "the database does not exist",
        "53300" => "the server has too many connections",
        "57P03" => "the server is starting up or shutting down",
        _ => "the server refused the connection",
    };
    if code.is_empty() { kind.to_owned() } else { format!("{kind} (SQLSTATE {code})") }
}
