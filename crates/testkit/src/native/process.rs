//! Operating-system plumbing for the native backend: users, child processes, signals, `/proc`.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::{Gid, Pid, Uid, User};

use crate::error::{Error, IoContext, Result};

/// The unprivileged account servers run as when the testkit itself runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
}

impl RunAs {
    /// `None` when not root (servers run as the current user); otherwise an unprivileged user:
    /// `preferred` if it exists, else `rwsplit`, created on first use.
    pub(crate) fn for_servers(preferred: &str) -> Result<Option<RunAs>> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        for name in [preferred, "rwsplit"] {
            if let Some(user) = lookup(name)? {
                return Ok(Some(RunAs { uid: user.uid, gid: user.gid }));
            }
        }
        let mut cmd = Command::new("useradd");
        cmd.args(["--system", "--user-group", "--no-create-home", "--shell", "/bin/false"]);
        cmd.arg("rwsplit");
        let out = output(&mut cmd)?;
        // Another process may have created it in the meantime (exit code 9: already exists).
        if !out.status.success() && out.status.code() != Some(9) {
            return Err(command_failed(&cmd, &out));
        }
        let user = lookup("rwsplit")?.ok_or_else(|| Error::Command {
            command: "useradd rwsplit".into(),
            output: "the user does not exist after useradd".into(),
        })?;
        Ok(Some(RunAs { uid: user.uid, gid: user.gid }))
    }

    /// This user as the vocabulary's [`ServerUser`](crate::vocab::ServerUser).
    pub(crate) fn server_user(self) -> crate::vocab::ServerUser {
        crate::vocab::ServerUser { uid: self.uid.as_raw(), gid: self.gid.as_raw() }
    }

    /// Makes `path` (and everything below it) owned by this user.
    pub(crate) fn chown_tree(self, path: &Path) -> Result<()> {
        let mut cmd = Command::new("chown");
        cmd.arg("-R").arg(format!("{}:{}", self.uid, self.gid)).arg(path);
        run(&mut cmd).map(drop)
    }

    /// Makes `cmd` run as this user.
    pub(crate) fn apply(self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        // std drops supplementary groups (setgroups(0)) itself when root changes uid.
        cmd.uid(self.uid.as_raw()).gid(self.gid.as_raw());
    }
}

fn lookup(name: &str) -> Result<Option<User>> {
    User::from_name(name).map_err(|e| Error::Io {
        what: format!("looking up user {name}"),
        source: std::io::Error::from(e),
    })
}

/// Runs `cmd`, capturing its output, and fails with its output if it exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    let out = output(cmd)?;
    if out.status.success() { Ok(out) } else { Err(command_failed(cmd, &out)) }
}

fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output().io_context(|| format!("running `{}`", describe(cmd)))
}

pub(crate) fn command_failed(cmd: &Command, out: &Output) -> Error {
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Error::Command {
        command: describe(cmd),
        output: format!("{}: {}", out.status, tail(&text, 20)),
    }
}

/// The command line, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last `lines` lines of a file, or a note saying why there are none.
pub(crate) fn tail_file(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes), lines),
        Err(e) => format!("(no log: {e})"),
    }
}

/// Sends `sig` to `pid`; a process that is already gone is not an error.
pub(crate) fn send(pid: u32, sig: Signal) -> Result<()> {
    match signal::kill(to_pid(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::Io {
            what: format!("sending {sig} to process {pid}"),
            source: std::io::Error::from(e),
        }),
    }
}

fn to_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`, …) and the parent pid, or `None`
/// when the process does not exist.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// True when `pid` no longer runs: gone, or a zombie waiting to be reaped.
pub(crate) fn is_gone(pid: u32) -> bool {
    !matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// True when `pid` is stopped by a signal.
pub(crate) fn is_stopped(pid: u32) -> bool {
    matches!(stat(pid), Some(('T', _)))
}

/// The direct children of `pid`.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| matches!(stat(p), Some((_, ppid)) if ppid == pid))
        .collect()
}

/// Whether the command line of `pid` contains `needle` (used to make sure a recorded pid still
/// belongs to the server we started before signalling it).
pub(crate) fn cmdline_contains(pid: u32, needle: &OsStr) -> bool {
    let Ok(bytes) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let needle = needle.as_encoded_bytes();
    !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle)
}

/// Every running process whose command line contains `needle`.
pub(crate) fn processes_mentioning(needle: &OsStr) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| p != me && !is_gone(p) && cmdline_contains(p, needle))
        .collect()
}

/// Polls until every pid in `pids` is gone (or a zombie), or `timeout` passes. Returns the ones
/// still running.
pub(crate) fn wait_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| !is_gone(p)).collect();
        if left.is_empty() || start.elapsed() >= timeout {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
