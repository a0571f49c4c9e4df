//! A fresh database per test, created on the primary so that it replicates.

use std::sync::Arc;

use crate::native::Engine;

/// A database created by [`Cluster::create_database`](crate::Cluster::create_database); dropped
/// (on PostgreSQL `WITH (FORCE)`, closing its sessions) when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    primary_port: u16,
    replica_ports: Vec<u16>,
    engine: Arc<Engine>,
}

impl TestDatabase {
    pub(crate) fn new(
        name: String,
        primary_port: u16,
        replica_ports: Vec<u16>,
        engine: Arc<Engine>,
    ) -> TestDatabase {
        TestDatabase { name, primary_port, replica_ports, engine }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL on the primary.
    pub fn primary_url(&self) -> String {
        self.engine.url(self.primary_port, &self.name)
    }

    /// Its URLs on the replicas, in node order.
    pub fn replica_urls(&self) -> Vec<String> {
        self.replica_ports.iter().map(|&p| self.engine.url(p, &self.name)).collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await. A cluster that is already gone makes this
        // fail fast (connection refused), which is fine.
        let sql = match &*self.engine {
            Engine::Postgres(_) => {
                format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)
            }
            Engine::MariaDb(_) => format!("DROP DATABASE IF EXISTS `{}`", self.name),
        };
        let mut cmd = self.engine.client(self.primary_port, &sql);
        cmd.env("PGCONNECT_TIMEOUT", "2");
        if let Ok(out) = cmd.output()
            && !out.status.success()
        {
            tracing::debug!(db = %self.name, "could not drop test database");
        }
    }
}
