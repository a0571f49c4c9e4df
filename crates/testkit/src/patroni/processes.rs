//! The processes behind a cluster: etcd, each member's Patroni and its configuration, the
//! first SQL, and teardown.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{Error, IoContext, Result};
use crate::native::process;

use super::{
    ETCD, MemberProc, MemberTags, PATRONI, PatroniCluster, READY_TIMEOUT, REST_TIMEOUT, http, lock,
};

impl PatroniCluster {
    pub(super) async fn start_etcd(&self) -> Result<()> {
        let data = self.dir.join("etcd");
        let log_path = self.dir.join("etcd.log");
        let log = fs::File::create(&log_path)
            .io_context(|| format!("creating {}", log_path.display()))?;
        let err = log.try_clone().io_context(|| "duplicating the log handle".into())?;
        let (client, peer) = (self.etcd_client_port, self.etcd_peer_port);
        let mut cmd = Command::new(ETCD);
        cmd.arg("--name").arg("e1").arg("--data-dir").arg(&data);
        cmd.arg("--listen-client-urls").arg(format!("http://127.0.0.1:{client}"));
        cmd.arg("--advertise-client-urls").arg(format!("http://127.0.0.1:{client}"));
        cmd.arg("--listen-peer-urls").arg(format!("http://127.0.0.1:{peer}"));
        cmd.arg("--initial-advertise-peer-urls").arg(format!("http://127.0.0.1:{peer}"));
        cmd.arg("--initial-cluster").arg(format!("e1=http://127.0.0.1:{peer}"));
        cmd.args(["--initial-cluster-state", "new"]);
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().io_context(|| format!("starting {}", process::describe(&cmd)))?;
        *lock(&self.etcd) = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(r) = http::request("GET", client, "/health", None, REST_TIMEOUT).await
                && r.body.contains("\"health\":\"true\"")
            {
                return Ok(());
            }
            if let Some(c) = lock(&self.etcd).as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(Error::NodeStartFailed {
                    node: "etcd".into(),
                    reason: format!("etcd exited ({status})"),
                    log_tail: process::tail_file(&log_path, 30),
                    log: log_path,
                });
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(Error::NodeStartFailed {
                    node: "etcd".into(),
                    reason: "not healthy after 30 s".into(),
                    log_tail: process::tail_file(&log_path, 30),
                    log: log_path,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lays out a new member (next free name `mN`, fresh ports) and starts its Patroni.
    pub(super) fn spawn_new_member(&self, tags: MemberTags) -> Result<String> {
        let mut members = lock(&self.members);
        let mut n = members.len() + 1;
        while members.iter().any(|m| m.name == format!("m{n}"))
            || self.dir.join(format!("m{n}")).exists()
        {
            n += 1;
        }
        let name = format!("m{n}");
        let ports = crate::vocab::allocate_ports(None, 2)?;
        let dir = self.dir.join(&name);
        fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .io_context(|| format!("chmod {}", dir.display()))?;
        }
        if let Some(r) = self.run_as {
            r.chown_tree(&dir)?;
        }
        let mut m = MemberProc {
            name: name.clone(),
            pg_port: ports[0],
            rest_port: ports[1],
            dir,
            tags,
            child: None,
        };
        self.write_config(&m)?;
        self.spawn_patroni(&mut m)?;
        members.push(m);
        Ok(name)
    }

    pub(super) fn write_config(&self, m: &MemberProc) -> Result<()> {
        let path = m.dir.join("patroni.yml");
        fs::write(&path, self.config(m)).io_context(|| format!("writing {}", path.display()))?;
        if let Some(r) = self.run_as {
            r.chown_tree(&path)?;
        }
        Ok(())
    }

    /// Member `m`'s Patroni configuration (YAML). Every string value is quoted, so none is
    /// read as a boolean (`mode: off` would be).
    fn config(&self, m: &MemberProc) -> String {
        let s = &self.settings;
        let dir = m.dir.display();
        let bin = self.pg_bin.display();
        let (pg, rest, etcd) = (m.pg_port, m.rest_port, self.etcd_client_port);
        let secrets = &self.secrets;
        format!(
            r#"scope: "{scope}"
namespace: "/{namespace}/"
name: "{name}"
log: {{level: INFO}}
restapi:
  listen: "127.0.0.1:{rest}"
  connect_address: "127.0.0.1:{rest}"
etcd3:
  hosts: "127.0.0.1:{etcd}"
  protocol: http
watchdog:
  mode: "off"
tags:
  nofailover: {nofailover}
  noloadbalance: {noloadbalance}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry_timeout}
    maximum_lag_on_failover: 1048576
    synchronous_mode: {sync}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_connections: 100
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: "128MB"
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums
postgresql:
  listen: "127.0.0.1:{pg}"
  connect_address: "127.0.0.1:{pg}"
  data_dir: "{dir}/data"
  bin_dir: "{bin}"
  pgpass: "{dir}/pgpass"
  authentication:
    superuser: {{username: postgres, password: "{su}"}}
    replication: {{username: replicator, password: "{repl}"}}
    rewind: {{username: postgres, password: "{su}"}}
  parameters:
    unix_socket_directories: "{dir}"
    shared_buffers: "32MB"
    fsync: "off"
    wal_receiver_status_interval: "1s"
    wal_retrieve_retry_interval: "500ms"
  basebackup:
    - checkpoint: fast
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
"#,
            scope = self.scope,
            namespace = self.namespace,
            name = m.name,
            nofailover = m.tags.nofailover,
            noloadbalance = m.tags.noloadbalance,
            ttl = s.ttl,
            loop_wait = s.loop_wait,
            retry_timeout = s.retry_timeout,
            sync = s.synchronous,
            su = secrets.superuser,
            repl = secrets.replication,
        )
    }

    pub(super) fn spawn_patroni(&self, m: &mut MemberProc) -> Result<()> {
        let log_path = m.dir.join("patroni.log");
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .io_context(|| format!("opening {}", log_path.display()))?;
        let err = log.try_clone().io_context(|| "duplicating the log handle".into())?;
        let mut cmd = Command::new(PATRONI);
        cmd.arg(m.dir.join("patroni.yml")).current_dir(&m.dir).env("HOME", &m.dir);
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        if let Some(r) = self.run_as {
            r.apply(&mut cmd);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().io_context(|| format!("starting {}", process::describe(&cmd)))?;
        m.child = Some(child);
        Ok(())
    }

    /// Ready: a writable leader and every other member streaming from it.
    pub(super) async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let leader = self.wait_leader(timeout).await?;
        let others: Vec<String> =
            self.members().into_iter().map(|m| m.name).filter(|n| *n != leader).collect();
        for name in others {
            self.wait_streaming(&name, timeout.saturating_sub(start.elapsed())).await?;
        }
        Ok(())
    }

    /// Creates the application role and database on the leader and waits until every member
    /// lets the application in.
    pub(super) async fn create_app_user(&self) -> Result<()> {
        let leader = self.wait_writable(READY_TIMEOUT).await?;
        let lm = self.member(&leader)?;
        let admin = lm.admin_url("postgres");
        let create_role = format!(
            "CREATE ROLE app LOGIN CREATEDB PASSWORD '{}'",
            self.secrets.app.replace('\'', "''")
        );
        self.sql(&admin, &create_role).await?;
        self.sql(&admin, "CREATE DATABASE app OWNER app").await?;
        let start = Instant::now();
        for m in self.members() {
            while self.sql(&m.url(), "SELECT 1::text").await.is_err() {
                self.check_timeout(start, READY_TIMEOUT, &format!("user app on {}", m.name))?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Runs `sql` on `url` (one fresh connection) and returns the first column of the first
    /// row as text. Errors name the statement, never the URL (it carries a password).
    pub(super) async fn sql(&self, url: &str, sql: &str) -> Result<Option<String>> {
        use sqlx::{Connection, Row};
        let node = url.rsplit_once('@').map_or("?", |(_, hostpart)| hostpart).to_owned();
        let fail = |source| Error::Sql { node: node.clone(), sql: sql.to_owned(), source };
        let run = async {
            let mut c = sqlx::PgConnection::connect(url).await.map_err(fail)?;
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_optional(&mut c)
                .await
                .map_err(fail)?;
            let _ = c.close().await;
            Ok(row.and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten()))
        };
        match tokio::time::timeout(Duration::from_secs(5), run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: format!("`{sql}` on {node}"),
                waited: Duration::from_secs(5),
            }),
        }
    }

    fn teardown(&self) -> Result<()> {
        let mut first = Ok(());
        // Replicas first, so they do not race for the leader lock.
        let mut members = lock(&self.members);
        for m in members.iter_mut().rev() {
            if let Err(e) = m.kill()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        if let Some(mut etcd) = lock(&self.etcd).take() {
            let _ = etcd.kill();
            let _ = etcd.wait();
        }
        // Anything else that names the directory (a postmaster Patroni restarted meanwhile).
        let left = process::processes_mentioning(self.dir.as_os_str());
        for &p in &left {
            let _ = process::send(p, Signal::SIGKILL);
        }
        process::wait_gone(&left, Duration::from_secs(10));
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                if first.is_ok() {
                    first = Err(Error::Io {
                        what: format!("removing {}", self.dir.display()),
                        source: e,
                    });
                }
            }
        }
        first
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        if self.keep {
            tracing::warn!(dir = %self.dir.display(), "keeping the patroni cluster");
            return;
        }
        if let Err(e) = self.teardown() {
            tracing::error!(error = %e, "patroni cluster teardown failed");
        }
    }
}
