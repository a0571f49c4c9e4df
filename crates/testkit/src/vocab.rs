//! The testkit's shared vocabulary: the database and backend seams ([`DbKind`],
//! [`BackendKind`]), the timeouts, LSN text, and the directory, name and port helpers every
//! backend uses. A leaf: it imports nothing of the testkit but its error type, so the
//! [`Cluster`](crate::Cluster) facade, the backends, the products and Patroni all import it and
//! none of them imports the facade.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};

/// Which database server a cluster runs (the database seam).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DbKind {
    /// PostgreSQL with physical streaming replication and hot standbys.
    #[default]
    Postgres,
    /// MariaDB with GTID replication; replicas are `read_only`.
    #[serde(rename = "mariadb")]
    MariaDb,
}

impl std::fmt::Display for DbKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbKind::Postgres => "postgres",
            DbKind::MariaDb => "mariadb",
        })
    }
}

impl std::str::FromStr for DbKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Ok(DbKind::Postgres),
            "mariadb" | "maria" => Ok(DbKind::MariaDb),
            other => Err(format!("unknown database kind `{other}` (expected postgres or mariadb)")),
        }
    }
}

/// Where the servers run (the backend seam).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackendKind {
    /// Server processes started from the binaries on this machine, as children of this process.
    #[default]
    Native,
    /// One Docker container per server, from an image the testkit builds locally from Debian's
    /// packages, on networks of the cluster's own (so the network can fail).
    Containers,
}

impl BackendKind {
    /// The backend named by `$RWSPLIT_TESTKIT_BACKEND` (`native` or `containers`), native when
    /// unset. `cargo xtask itest
    /// --backend containers` sets it, so the tests need not say.
    pub fn from_env() -> Result<BackendKind> {
        match env_setting("RWSPLIT_TESTKIT_BACKEND") {
            Some((name, v)) => {
                v.to_string_lossy().parse().map_err(|what| Error::InvalidSetting { name, what })
            }
            None => Ok(BackendKind::Native),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Native => "native",
            BackendKind::Containers => "containers",
        })
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "native" => Ok(BackendKind::Native),
            "containers" | "container" | "docker" => Ok(BackendKind::Containers),
            other => Err(format!("unknown backend `{other}` (expected native or containers)")),
        }
    }
}

/// How long a node may take to start accepting connections.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the replicas may take to replicate after the primary is up.
pub(crate) const STREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout for the testkit's own control connections.
pub(crate) const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses PostgreSQL's `X/Y` LSN text into a byte position.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
        return None;
    }
    Some((hi << 32) | lo)
}

/// Formats a byte position as PostgreSQL's `X/Y` LSN text.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// The testkit's setting `name` (`RWSPLIT_TESTKIT_…`) from the environment: the name and its
/// value. The testkit's variables share one prefix so that `RoutedConnection::from_env`, which
/// refuses unknown `RWSPLIT_*` names, knows them for another's.
pub(crate) fn env_setting(name: &'static str) -> Option<(&'static str, std::ffi::OsString)> {
    std::env::var_os(name).map(|v| (name, v))
}

/// Where the cached `initdb` template lives: `$RWSPLIT_TESTKIT_CACHE`, else
/// `<tmp>/rwsplit-testkit`. Separate from the cluster directory so a per-run cluster directory
/// does not pay for `initdb` again.
pub(crate) fn template_root() -> PathBuf {
    std::env::var_os("RWSPLIT_TESTKIT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rwsplit-testkit"))
}

/// Where clusters' directories go: `$RWSPLIT_TESTKIT_DIR`, else `<tmp>/rwsplit-testkit`.
pub(crate) fn default_root() -> PathBuf {
    std::env::var_os("RWSPLIT_TESTKIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rwsplit-testkit"))
}

/// Creates `dir` readable and traversable by everyone (the servers run as another user).
pub(crate) fn ensure_traversable_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    let meta = fs::metadata(dir).io_context(|| format!("reading {}", dir.display()))?;
    if meta.permissions().mode() & 0o005 != 0o005 {
        let mut p = meta.permissions();
        p.set_mode(p.mode() | 0o755);
        fs::set_permissions(dir, p).io_context(|| format!("chmod {}", dir.display()))?;
    }
    Ok(())
}

/// A new cluster's own directory below `root`, named after the cluster, this process and a
/// unique value.
pub(crate) fn cluster_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(format!("{name}-{}-{:x}", std::process::id(), unique()));
    fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `s` as a lower-case SQL identifier of at most 30 characters.
pub(crate) fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(30)
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 't');
    }
    out
}

/// `count` free loopback ports: from `base` on if given (each must be free), else random ones.
pub(crate) fn allocate_ports(base: Option<u16>, count: usize) -> Result<Vec<u16>> {
    if let Some(base) = base {
        let mut ports = Vec::with_capacity(count);
        for i in 0..count {
            let port = u16::try_from(usize::from(base) + i)
                .map_err(|_| Error::PortInUse { port: u16::MAX })?;
            if !port_is_free(port) {
                return Err(Error::PortInUse { port });
            }
            ports.push(port);
        }
        return Ok(ports);
    }
    // Random free ports in 20000–29999 (below the ephemeral range), never twice in a process.
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut ports = Vec::with_capacity(count);
    let mut seed = unique() ^ u64::from(std::process::id()).rotate_left(32);
    for _ in 0..10_000 {
        if ports.len() == count {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = 20_000 + u16::try_from(seed % 10_000).unwrap_or(0);
        if !taken.contains(&port) && !ports.contains(&port) && port_is_free(port) {
            ports.push(port);
        }
    }
    if ports.len() < count {
        return Err(Error::Timeout {
            what: "free ports in 20000-29999".into(),
            waited: Duration::ZERO,
        });
    }
    taken.extend(&ports);
    Ok(ports)
}

/// A value unique within this process and unlikely to repeat across processes.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (u64::from(t) << 16) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Whether nothing listens on loopback `port` (binding it succeeds).
pub(crate) fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The account the servers run as when the testkit runs as root (see `RunAs` in the native
/// backend): its uid and primary gid. The servers get no supplementary groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Fails with [`Error::UnreachableDir`] unless `user` can search every directory from `/` down
/// to `dir` (which must exist), so that a root below a `0700` home is named as such before
/// `initdb`, `mariadb-install-db` or a server meets it as `Permission denied`. `setting` is the
/// environment variable that moves `dir` elsewhere.
///
/// It reads the mode bits the way the kernel does for a process with that uid and gid and no
/// supplementary groups (what the servers get: std drops them when root changes uid): the owner
/// bits if the user owns the directory, else the group bits if its group is the user's, else
/// the other bits. `access(2)` cannot answer this, as it checks the caller (root), and
/// starting a probe process as the user costs a fork per cluster; the mode bits name the
/// directory that blocks. A POSIX ACL that grants more than the bits is not read (the check
/// then errs on the side of refusing).
pub(crate) fn ensure_reachable(dir: &Path, user: ServerUser, setting: &'static str) -> Result<()> {
    if user.uid == 0 {
        return Ok(());
    }
    let full = fs::canonicalize(dir).io_context(|| format!("resolving {}", dir.display()))?;
    let mut chain: Vec<&Path> = full.ancestors().collect();
    chain.reverse();
    for step in chain {
        let meta = fs::metadata(step).io_context(|| format!("reading {}", step.display()))?;
        let mode = meta.mode();
        let search = if meta.uid() == user.uid {
            mode & 0o100
        } else if meta.gid() == user.gid {
            mode & 0o010
        } else {
            mode & 0o001
        };
        if search == 0 {
            let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(user.uid))
                .ok()
                .flatten()
                .map_or_else(|| user.uid.to_string(), |u| u.name);
            return Err(Error::UnreachableDir {
                dir: dir.to_path_buf(),
                blocked: step.to_path_buf(),
                mode: mode & 0o7777,
                user: name,
                setting,
            });
        }
    }
    Ok(())
}

/// Where a server listens, as seen from some place (the host, or another node).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Addr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Addr {
    pub(crate) fn new(host: impl Into<String>, port: u16) -> Addr {
        Addr { host: host.into(), port }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x300_0060));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(format_lsn(0x1_0000_00A0), "1/A0");
        assert_eq!(parse_lsn("nonsense"), None);
        assert_eq!(parse_lsn("1/2/3"), None);
    }

    #[test]
    fn sanitized_names_are_identifiers() {
        assert_eq!(sanitize("My Test-1"), "my_test_1");
        assert_eq!(sanitize("9lives"), "t9lives");
        assert_eq!(sanitize(""), "t");
    }

    #[test]
    fn a_taken_base_port_is_named() {
        let holder = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = holder.local_addr().unwrap().port();
        let err = allocate_ports(Some(port), 1).unwrap_err();
        assert!(matches!(err, Error::PortInUse { port: p } if p == port));
        assert!(err.to_string().contains(&format!("port {port}")), "{err}");
    }

    #[test]
    fn random_ports_are_distinct_and_free() {
        let ports = allocate_ports(None, 5).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        assert!(ports.iter().all(|p| (20_000..30_000).contains(p)));
    }

    /// A root below a `0700` parent owned by someone else is named, with the fix, for the
    /// server user; the same tree is fine for the parent's owner, and once the parent is
    /// `o+x` for everyone.
    #[test]
    fn a_root_below_a_0700_parent_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!(
            "rwsplit-0700-{}-{:x}",
            std::process::id(),
            unique()
        ));
        let parent = base.join("private");
        let root = parent.join("root");
        ensure_traversable_dir(&root).unwrap();
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o700)).unwrap();
        let owner = fs::metadata(&parent).unwrap();
        // A user that is neither the parent's owner nor in its group: the servers' user.
        let server = ServerUser { uid: owner.uid() + 4242, gid: owner.gid() + 4242 };

        let err = ensure_reachable(&root, server, "RWSPLIT_TESTKIT_DIR").unwrap_err();
        let text = err.to_string();
        let blocked = fs::canonicalize(&parent).unwrap();
        assert!(
            matches!(&err, Error::UnreachableDir { blocked: b, mode: 0o700, .. } if *b == blocked),
            "{err:?}"
        );
        assert!(text.contains(&format!("chmod o+x {}", blocked.display())), "{text}");
        assert!(text.contains("RWSPLIT_TESTKIT_DIR"), "{text}");
        assert!(text.contains(&root.display().to_string()), "{text}");

        let as_owner = ServerUser { uid: owner.uid(), gid: owner.gid() + 4242 };
        ensure_reachable(&root, as_owner, "RWSPLIT_TESTKIT_DIR").unwrap();
        let as_group = ServerUser { uid: owner.uid() + 4242, gid: owner.gid() };
        assert!(ensure_reachable(&root, as_group, "RWSPLIT_TESTKIT_DIR").is_err());
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o701)).unwrap();
        ensure_reachable(&root, server, "RWSPLIT_TESTKIT_DIR").unwrap();
        fs::remove_dir_all(&base).unwrap();
    }
}
