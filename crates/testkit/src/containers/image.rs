//! The node image: built on this machine from Debian's packages (no registry is reachable) by
//! `mmdebstrap … | docker import`, cached by a content hash of its recipe.
//!
//! The recipe is `/work/shared/research/containers.md`'s slim set: `postgresql`,
//! `mariadb-server-core` and `mariadb-client-core` in a `--variant=apt` root filesystem built in
//! a tmpfs, without documentation, locales or PostgreSQL's JIT (LLVM alone is 107 MB; the nodes
//! run with `jit=off`), plus the two entrypoints of this directory. apt inside the build reaches
//! the archive as the host's apt does: the same sources file and the same `Acquire` options. A
//! build takes 30–90 s; the image is about 280 MB. The tag and a label carry the hash of
//! everything above (with the host's sources file), so a second run builds nothing and a
//! changed recipe builds a new image.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::docker::{LABEL, docker};
use crate::error::{Error, IoContext, Result};

/// Bump to force a rebuild when something outside the hashed text changes.
const RECIPE_VERSION: u32 = 1;
const PG_ENTRY: &str = include_str!("rwsplit-pg.sh");
const MARIADB_ENTRY: &str = include_str!("rwsplit-mariadb.sh");
const PACKAGES: &str = "postgresql,mariadb-server-core,mariadb-client-core";
/// The label holding the recipe hash.
pub(crate) const IMAGE_LABEL: &str = "rwsplit.testkit.recipe";
const REPOSITORY: &str = "rwsplit-testkit/dbnode";

const HOOKS: [&str; 3] = [
    // Debian's postgresql-common would otherwise create and start a `main` cluster.
    "--setup-hook=mkdir -p \"$1\"/etc/postgresql-common/createcluster.d && \
     echo 'create_main_cluster = false' > \"$1\"/etc/postgresql-common/createcluster.d/no-main.conf",
    // mariadb-server-core does not create the account the server runs as.
    "--customize-hook=chroot \"$1\" useradd --system --no-create-home --home-dir /nonexistent \
     --shell /usr/sbin/nologin mysql",
    "--customize-hook=cd \"$1\" && rm -rf var/lib/mysql/* usr/lib/postgresql/*/lib/llvmjit* \
     usr/lib/postgresql/*/lib/bitcode usr/lib/*/libLLVM-*.so* usr/lib/*/libz3.so*",
];

/// The image for this recipe, and how it was obtained.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// `rwsplit-testkit/dbnode:<hash>`.
    pub(crate) reference: String,
    /// Whether this call built it (else it was cached).
    pub(crate) built: bool,
    /// Seconds spent (building, or looking it up).
    pub(crate) seconds: f64,
}

/// What the recipe depends on, hashed into the image tag.
struct Recipe {
    suite: String,
    sources: PathBuf,
    apt_options: Vec<String>,
    key: String,
}

impl Recipe {
    fn read() -> Result<Recipe> {
        let suite = os_codename()?;
        let sources = sources_file()?;
        let sources_text = std::fs::read_to_string(&sources)
            .io_context(|| format!("reading {}", sources.display()))?;
        let apt_options = apt_options()?;
        let mut h = Fnv::default();
        for part in [
            &RECIPE_VERSION.to_string(),
            PG_ENTRY,
            MARIADB_ENTRY,
            PACKAGES,
            &HOOKS.join("\n"),
            &suite,
            &sources_text,
            &apt_options.join("\n"),
        ] {
            h.write(part.as_bytes());
            h.write(&[0]);
        }
        Ok(Recipe { suite, sources, apt_options, key: format!("{:016x}", h.0) })
    }
}

/// FNV-1a, 64 bits: a stable hash (std's `DefaultHasher` may change between Rust releases).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The node image, built on first use. Concurrent callers (threads or processes) wait for one
/// build.
pub(crate) fn ensure() -> Result<Image> {
    let started = Instant::now();
    let recipe = Recipe::read()?;
    let reference = format!("{REPOSITORY}:{}", recipe.key);
    if exists(&reference) {
        return Ok(Image { reference, built: false, seconds: started.elapsed().as_secs_f64() });
    }
    let lock_path = std::env::temp_dir().join("rwsplit-testkit-image.lock");
    let file = std::fs::File::create(&lock_path)
        .io_context(|| format!("creating {}", lock_path.display()))?;
    let _lock =
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::Io {
                what: format!("locking {}", lock_path.display()),
                source: std::io::Error::from(e),
            }
        })?;
    // Another process may have built it while we waited.
    if exists(&reference) {
        return Ok(Image { reference, built: false, seconds: started.elapsed().as_secs_f64() });
    }
    build(&recipe, &reference)?;
    tracing::info!(image = %reference, seconds = started.elapsed().as_secs_f64(), "built");
    Ok(Image { reference, built: true, seconds: started.elapsed().as_secs_f64() })
}

fn exists(reference: &str) -> bool {
    docker(&["image", "inspect", "--format", "{{.Id}}", reference]).is_ok()
}

fn build(recipe: &Recipe, reference: &str) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(Error::Command {
            command: "mmdebstrap --mode=root".into(),
            output: "building the node image needs root (mmdebstrap --mode=root)".into(),
        });
    }
    let mmdebstrap = which("mmdebstrap").ok_or_else(|| Error::Command {
        command: "mmdebstrap".into(),
        output: "not found: the containers backend builds its image with it; \
                 apt-get install mmdebstrap"
            .into(),
    })?;
    // A tmpfs for the root filesystem: small files cost 2.5 ms each on this disk.
    let tmp = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let scripts = tmp.join(format!("rwsplit-image-{}-{:x}", std::process::id(), super::unique()));
    std::fs::create_dir_all(&scripts).io_context(|| format!("creating {}", scripts.display()))?;
    let result = build_with(recipe, reference, &mmdebstrap, &tmp, &scripts);
    let _ = std::fs::remove_dir_all(&scripts);
    result
}

fn build_with(
    recipe: &Recipe,
    reference: &str,
    mmdebstrap: &Path,
    tmp: &Path,
    scripts: &Path,
) -> Result<()> {
    for (name, text) in [("rwsplit-pg", PG_ENTRY), ("rwsplit-mariadb", MARIADB_ENTRY)] {
        let path = scripts.join(name);
        std::fs::write(&path, text).io_context(|| format!("writing {}", path.display()))?;
    }
    let mut cmd = Command::new(mmdebstrap);
    cmd.env("TMPDIR", tmp);
    cmd.args(["--mode=root", "--variant=apt", "--format=tar", "--quiet"]);
    for opt in &recipe.apt_options {
        cmd.arg(format!("--aptopt={opt}"));
    }
    for dir in ["doc", "man", "info", "locale"] {
        cmd.arg(format!("--dpkgopt=path-exclude=/usr/share/{dir}/*"));
    }
    cmd.args(HOOKS);
    cmd.arg(format!(
        "--customize-hook=install -m 755 {dir}/rwsplit-pg {dir}/rwsplit-mariadb \"$1\"/usr/local/bin/",
        dir = scripts.display()
    ));
    cmd.arg(format!("--include={PACKAGES}"));
    cmd.arg(&recipe.suite).arg("-").arg(&recipe.sources);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut tar = cmd.spawn().io_context(|| "starting mmdebstrap".into())?;
    let tar_out = tar.stdout.take().ok_or_else(|| Error::Command {
        command: "mmdebstrap".into(),
        output: "no standard output to read the root filesystem from".into(),
    })?;
    let mut import = Command::new("docker");
    import.args(["import", "-c"]).arg(format!("LABEL {IMAGE_LABEL}={}", recipe.key));
    import.args(["-c", &format!("LABEL {LABEL}=1")]);
    import.args(["-c", "ENV LANG=C.UTF-8 TZ=UTC"]);
    import.args(["-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
    import.args(["-", reference]);
    import.stdin(Stdio::from(tar_out)).stdout(Stdio::null()).stderr(Stdio::piped());
    let import = import.spawn().io_context(|| "starting docker import".into())?;
    let tar_out = tar.wait_with_output().io_context(|| "waiting for mmdebstrap".into())?;
    let import_out = import.wait_with_output().io_context(|| "waiting for docker import".into())?;
    if !tar_out.status.success() {
        let _ = docker(&["rmi", reference]);
        return Err(Error::Command {
            command: format!("mmdebstrap … {} - {}", recipe.suite, recipe.sources.display()),
            output: format!(
                "{}: {}",
                tar_out.status,
                crate::native::process::tail(&String::from_utf8_lossy(&tar_out.stderr), 20)
            ),
        });
    }
    if !import_out.status.success() {
        return Err(Error::Docker {
            command: format!("import - {reference}"),
            output: format!(
                "{}: {}",
                import_out.status,
                String::from_utf8_lossy(&import_out.stderr)
            ),
        });
    }
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The Debian suite of this machine (`VERSION_CODENAME` of `/etc/os-release`).
fn os_codename() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .io_context(|| "reading /etc/os-release".into())?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::Command {
            command: "reading /etc/os-release".into(),
            output: "no VERSION_CODENAME: the containers backend builds its image with the \
                     host's Debian suite and apt sources"
                .into(),
        })
}

/// The host's apt sources: the first `*.sources` file, else `sources.list`.
fn sources_file() -> Result<PathBuf> {
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sources"))
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .or_else(|| {
            let list = PathBuf::from("/etc/apt/sources.list");
            list.is_file().then_some(list)
        })
        .ok_or_else(|| Error::Command {
            command: "finding apt sources".into(),
            output: "no /etc/apt/sources.list.d/*.sources and no /etc/apt/sources.list".into(),
        })
}

/// The host's `Acquire` options that let apt reach the archive the same way inside the build
/// (a dated snapshot needs `Check-Valid-Until "false"`; a proxy must be used there too).
fn apt_options() -> Result<Vec<String>> {
    let out = crate::native::process::run(Command::new("apt-config").arg("dump"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| {
            [
                "Acquire::http::Proxy ",
                "Acquire::https::Proxy ",
                "Acquire::Check-Valid-Until ",
                "Acquire::Check-Date ",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_the_reference_function() {
        // Published FNV-1a 64 test vectors.
        let mut h = Fnv::default();
        h.write(b"");
        assert_eq!(h.0, 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv::default();
        h.write(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv::default();
        h.write(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_entrypoints_exec_the_server() {
        assert!(PG_ENTRY.starts_with("#!/bin/bash"));
        assert!(MARIADB_ENTRY.starts_with("#!/bin/bash"));
        assert!(PG_ENTRY.contains("exec \"$BIN/postgres\""), "postgres must be PID 1");
        assert!(MARIADB_ENTRY.contains("exec mariadbd"), "mariadbd must be PID 1");
    }
}
