//! The monitor's probes, run on the adapter's own pools.

use rwsplit_monitor::{ProbeConn, ProbeError, Row};
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Statement};

/// One node's pool, as a probe connection.
pub(crate) struct NodeProbe<'a>(pub(crate) &'a DatabaseConnection);

impl ProbeConn for NodeProbe<'_> {
    async fn fetch_row(&self, sql: &'static str) -> Result<Option<Row>, ProbeError> {
        let stmt = Statement::from_string(self.0.get_database_backend(), sql);
        let row = self.0.query_one_raw(stmt).await.map_err(ProbeError::unreachable)?;
        Ok(row.map(|r| {
            let names = r.column_names();
            Row::new(names.into_iter().enumerate().map(|(i, n)| (n, text(&r, i))))
        }))
    }
}

/// A column as text, whatever its SQL type (`SHOW SLAVE STATUS` mixes strings and integers).
fn text(row: &QueryResult, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get_by_index::<Option<String>>(i) {
        return v;
    }
    if let Ok(v) = row.try_get_by_index::<Option<i64>>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get_by_index::<Option<u64>>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get_by_index::<Option<i32>>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get_by_index::<Option<bool>>(i) {
        return v.map(|v| v.to_string());
    }
    row.try_get_by_index::<Option<Vec<u8>>>(i)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}
