//! A native node: the server is a child process of this process.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Engine, process};
use crate::backend::ProcessState;
use crate::backend::Runtime;
use crate::error::{Error, IoContext, Result};
use crate::vocab::Addr;

#[derive(Debug, Default)]
struct Proc {
    child: Option<Child>,
    pid: Option<u32>,
    /// Processes stopped by `hang`, resumed by `unhang`.
    hung: Vec<u32>,
}

/// One server process started from the binaries on this machine.
#[derive(Debug)]
pub(crate) struct NativeNode {
    name: String,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    settings: Vec<(String, String)>,
    engine: Arc<Engine>,
    proc: Mutex<Proc>,
}

impl NativeNode {
    pub(crate) fn new(
        name: String,
        port: u16,
        data: PathBuf,
        log: PathBuf,
        settings: Vec<(String, String)>,
        engine: Arc<Engine>,
        adopted_pid: Option<u32>,
    ) -> NativeNode {
        let proc = Proc { child: None, pid: adopted_pid, hung: Vec::new() };
        NativeNode { name, port, data, log, settings, engine, proc: Mutex::new(proc) }
    }

    fn lock(&self) -> MutexGuard<'_, Proc> {
        self.proc.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn invalid(&self, what: &str) -> Error {
        Error::InvalidControl { node: self.name.clone(), what: what.to_owned() }
    }

    fn kill_and_wait(&self, sig: Signal, all: bool, timeout: Duration) -> Result<()> {
        let left = process::wait_gone(&self.signal(sig, all, timeout), timeout);
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::Timeout { what: format!("{} to exit ({sig})", self.name), waited: timeout })
        }
    }

    /// Signals the server, and its processes too if `all`, and reaps the server if it is our
    /// child. Returns the pids to wait for (the server's processes in any case).
    fn signal(&self, sig: Signal, all: bool, timeout: Duration) -> Vec<u32> {
        let mut guard = self.lock();
        let Some(pid) = guard.pid.take() else { return Vec::new() };
        // A recorded pid may have been reused by an unrelated process: check before signalling.
        if guard.child.is_none() && !process::cmdline_contains(pid, self.data.as_os_str()) {
            return Vec::new();
        }
        let mut pids = process::children_of(pid);
        pids.push(pid);
        for &p in &pids {
            if all || p == pid {
                let _ = process::send(p, sig);
            }
            // A stopped process only acts on the signal once continued.
            let _ = process::send(p, Signal::SIGCONT);
        }
        if let Some(mut child) = guard.child.take() {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        guard.hung.clear();
        pids
    }
}

impl Runtime for NativeNode {
    fn start(&self) -> Result<()> {
        let mut guard = self.lock();
        if guard.pid.is_some_and(|p| !process::is_gone(p)) {
            return Err(self.invalid("is already running"));
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .io_context(|| format!("opening {}", self.log.display()))?;
        let err = log.try_clone().io_context(|| "duplicating the log handle".into())?;
        let mut cmd = self.engine.server(&self.data, &self.name, self.port, &self.settings);
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        // Its own process group: a Ctrl-C meant for the test runner does not reach the server.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().io_context(|| format!("starting {}", process::describe(&cmd)))?;
        guard.pid = Some(child.id());
        guard.child = Some(child);
        guard.hung.clear();
        Ok(())
    }

    fn check_alive(&self) -> Result<()> {
        let mut guard = self.lock();
        let exited = match guard.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
            None => guard.pid.filter(|&p| process::is_gone(p)).map(|_| "exited".to_owned()),
        };
        match exited {
            Some(status) => {
                guard.child = None;
                guard.pid = None;
                Err(Error::NodeStartFailed {
                    node: self.name.clone(),
                    reason: format!("the server exited ({status})"),
                    log: self.log.clone(),
                    log_tail: process::tail_file(&self.log, 30),
                })
            }
            None => Ok(()),
        }
    }

    fn pid(&self) -> Option<u32> {
        self.lock().pid.filter(|&p| !process::is_gone(p))
    }

    fn state(&self) -> ProcessState {
        match self.pid() {
            None => ProcessState::Stopped,
            Some(p) if process::is_stopped(p) => ProcessState::Hung,
            Some(_) => ProcessState::Running,
        }
    }

    /// The server process is stopped first and seen stopped, and only then are its children
    /// listed and stopped, until every one is: a stopped server forks no more, so no child can
    /// escape. Listing the children first would miss a PostgreSQL backend forked in between,
    /// which keeps answering on its connection: a probe on it would succeed on a "frozen"
    /// server (a frozen primary would go unnoticed while the application's pool reconnects).
    /// A process-group signal cannot do it: every PostgreSQL child calls `setsid()`, leaving
    /// the server's group.
    fn hang(&self) -> Result<()> {
        let mut guard = self.lock();
        let pid = guard
            .pid
            .filter(|&p| !process::is_gone(p))
            .ok_or_else(|| self.invalid("is not running"))?;
        process::send(pid, Signal::SIGSTOP)?;
        // Signals are delivered asynchronously: return only once the server and every process
        // it forked are really frozen.
        let waited = Duration::from_secs(2);
        let deadline = Instant::now() + waited;
        while !process::is_stopped(pid) {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "the server to stop on SIGSTOP".into(),
                    waited,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        loop {
            let running: Vec<u32> = process::children_of(pid)
                .into_iter()
                .filter(|&p| !process::is_stopped(p) && !process::is_gone(p))
                .collect();
            if running.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "the server's processes to stop on SIGSTOP".into(),
                    waited,
                });
            }
            for &p in &running {
                process::send(p, Signal::SIGSTOP)?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut pids = vec![pid];
        pids.extend(process::children_of(pid));
        guard.hung = pids;
        Ok(())
    }

    fn unhang(&self) -> Result<()> {
        let mut guard = self.lock();
        let mut pids = std::mem::take(&mut guard.hung);
        if let Some(pid) = guard.pid {
            pids.extend(process::children_of(pid));
            // Children first, then the server.
            pids.retain(|&p| p != pid);
            pids.push(pid);
        }
        for p in pids {
            process::send(p, Signal::SIGCONT)?;
        }
        Ok(())
    }

    fn crash(&self) -> Result<()> {
        self.kill_and_wait(Signal::SIGKILL, true, Duration::from_secs(10))
    }

    fn stop(&self) -> Result<()> {
        let timeout = Duration::from_secs(30);
        let left =
            process::wait_gone(&self.signal(self.engine.stop_signal(), false, timeout), timeout);
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::Timeout { what: format!("{} to stop", self.name), waited: timeout })
        }
    }

    fn data_dir(&self) -> &Path {
        &self.data
    }

    fn log_path(&self) -> &Path {
        &self.log
    }

    fn replication_addr(&self) -> Addr {
        Addr::new("127.0.0.1", self.port)
    }

    fn destroy(&self) -> Result<()> {
        self.kill_and_wait(Signal::SIGKILL, true, Duration::from_secs(10))
    }
}
