// ---- Replaced by `cargo xtask seaorm-suite` (rwsplit): SeaORM's `setup`, `tear_down` and
// `TestContext`, on a replicated cluster through `RoutedConnection`. The rest of this file is
// SeaORM's own.

/// SeaORM's `setup`, on the suite's cluster: a `RoutedConnection` to a fresh database
/// `db_name` (`base_url` is not used: the cluster comes from the environment).
pub async fn setup(_base_url: &str, db_name: &str) -> DatabaseConnection {
    sea_orm::suite::connect(db_name).await
}

/// SeaORM's `tear_down`: drops the database on the primary.
pub async fn tear_down(_base_url: &str, db_name: &str) {
    sea_orm::suite::drop_database(db_name).await
}

pub struct TestContext {
    base_url: String,
    db_name: String,
    pub db: DatabaseConnection,
}

impl TestContext {
    pub async fn new(test_name: &str) -> Self {
        let base_url = std::env::var("DATABASE_URL").unwrap_or_default();
        let db: DatabaseConnection = setup(&base_url, test_name).await;
        Self { base_url, db_name: test_name.to_string(), db }
    }

    pub async fn delete(&self) {
        tear_down(&self.base_url, &self.db_name).await;
    }
}
