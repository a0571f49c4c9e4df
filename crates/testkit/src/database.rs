//! A fresh database per test, created on the primary so that it replicates.

use std::sync::Arc;
use std::time::Duration;

use crate::product::Product;
use crate::sql::Conn;

/// A database created by [`Cluster::create_database`](crate::Cluster::create_database); dropped
/// (on PostgreSQL `WITH (FORCE)`, closing its sessions) when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    primary_port: u16,
    replica_ports: Vec<u16>,
    product: Arc<dyn Product>,
}

impl TestDatabase {
    pub(crate) fn new(
        name: String,
        primary_port: u16,
        replica_ports: Vec<u16>,
        product: Arc<dyn Product>,
    ) -> TestDatabase {
        TestDatabase { name, primary_port, replica_ports, product }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL on the primary.
    pub fn primary_url(&self) -> String {
        self.product.url(self.primary_port, &self.name)
    }

    /// Its URLs on the replicas, in node order.
    pub fn replica_urls(&self) -> Vec<String> {
        self.replica_ports.iter().map(|&p| self.product.url(p, &self.name)).collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime that must not block: a thread of its
        // own with a runtime of its own, bounded in time. A cluster that is already gone makes
        // this fail fast (connection refused), which is fine.
        let product = Arc::clone(&self.product);
        let (port, name) = (self.primary_port, self.name.clone());
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let sql = product.drop_database_sql(&name);
                let run = async {
                    let mut c = Conn::open(
                        product.kind(),
                        &product.admin_url(port, product.admin_db()),
                        Duration::from_secs(2),
                    )
                    .await?;
                    let r = c.execute(&sql).await;
                    c.close().await;
                    r
                };
                match tokio::time::timeout(Duration::from_secs(10), run).await {
                    Ok(Ok(())) => Some(()),
                    _ => {
                        tracing::debug!(db = %name, "could not drop test database");
                        None
                    }
                }
            })
        });
        let _ = dropper.join();
    }
}
