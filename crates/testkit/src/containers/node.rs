//! A node in a container of its own: started, frozen, killed and cut off through Docker and
//! the container's own network namespace.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::docker::{REPL_IP_LABEL, RUN_LABEL, docker};
use crate::backend::ProcessState;
use crate::backend::{Net, Runtime};
use crate::error::{Error, Result};
use crate::vocab::Addr;

/// One node's container.
#[derive(Debug)]
pub(crate) struct ContainerNode {
    /// The node's name in the cluster (`n1`), also its alias on the replication network.
    pub(crate) node: String,
    /// The container's name (`<run>-n1`).
    pub(crate) container: String,
    pub(crate) run: String,
    /// The server's port, inside the container and published on 127.0.0.1 alike.
    pub(crate) port: u16,
    pub(crate) data: PathBuf,
    pub(crate) log: PathBuf,
}

impl ContainerNode {
    pub(crate) fn ctl_network(&self) -> String {
        format!("{}-ctl", self.run)
    }

    pub(crate) fn repl_network(&self) -> String {
        format!("{}-repl", self.run)
    }

    fn invalid(&self, what: String) -> Error {
        Error::InvalidControl { node: self.node.clone(), what }
    }

    fn inspect(&self, format: &str) -> Result<String> {
        docker(&["inspect", "--format", format, &self.container])
    }

    fn status(&self) -> String {
        self.inspect("{{.State.Status}}").unwrap_or_default()
    }

    fn wait_status(&self, done: impl Fn(&str) -> bool, what: &str) -> Result<()> {
        let timeout = Duration::from_secs(30);
        let start = Instant::now();
        while !done(&self.status()) {
            if start.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: format!("container {} to {what}", self.container),
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The container's process id, after checking that the container is this cluster's: a
    /// network control never enters another namespace.
    fn own_pid(&self) -> Result<u32> {
        let run = self.inspect(&format!("{{{{index .Config.Labels \"{RUN_LABEL}\"}}}}"))?;
        if run != self.run {
            return Err(self.invalid(format!(
                "container {} is labelled run `{run}`, not this cluster's `{}`: refusing to touch \
                 its network",
                self.container, self.run
            )));
        }
        let pid: u32 = self.inspect("{{.State.Pid}}")?.parse().unwrap_or(0);
        if pid == 0 {
            return Err(self.invalid("is not running: its network cannot be changed".into()));
        }
        Ok(pid)
    }

    /// The container's address on `network`, checked to be one of this cluster's networks.
    fn ip_on(&self, network: &str) -> Result<String> {
        if network != self.ctl_network() && network != self.repl_network() {
            return Err(self.invalid(format!("{network} is not one of this cluster's networks")));
        }
        let ip = self.inspect(&format!(
            "{{{{with index .NetworkSettings.Networks \"{network}\"}}}}{{{{.IPAddress}}}}{{{{end}}}}"
        ))?;
        if ip.is_empty() {
            return Err(self.invalid(format!("is not attached to {network}")));
        }
        Ok(ip)
    }

    /// The interface inside the container's namespace that holds `ip`: found by address, never
    /// assumed (`eth0` moves when networks are reconnected), and refused unless it is an
    /// `ethN` of the container.
    fn interface_with(&self, pid: u32, ip: &str) -> Result<String> {
        let out = nsenter(pid, &["ip", "-o", "-4", "addr", "show"])?;
        let needle = format!(" {ip}/");
        let iface = out
            .lines()
            .find(|l| l.contains(&needle))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(|i| i.split('@').next().unwrap_or(i).to_owned())
            .unwrap_or_default();
        let valid = iface.strip_prefix("eth").is_some_and(|n| n.parse::<u32>().is_ok());
        if !valid {
            return Err(self.invalid(format!(
                "no ethN interface holds {ip} in its container (found `{iface}`): refusing to \
                 add a rule"
            )));
        }
        Ok(iface)
    }

    /// Inserts (`-I`) or deletes (`-D`) one INPUT rule in the container's namespace, tagged with
    /// this cluster's run id.
    fn rule(&self, op: &str, matches: &[&str]) -> Result<()> {
        let pid = self.own_pid()?;
        let comment = format!("rwsplit-{}", self.run);
        let mut args = vec!["iptables", "-w", op, "INPUT"];
        args.extend_from_slice(matches);
        args.extend_from_slice(&["-m", "comment", "--comment", &comment, "-j", "DROP"]);
        let result = nsenter(pid, &args);
        match (op, result) {
            (_, Ok(_)) => Ok(()),
            // Healing what is not cut is no error.
            ("-D", Err(_)) => Ok(()),
            (_, Err(e)) => Err(e),
        }
    }

    fn client_rule(&self, op: &str) -> Result<()> {
        let pid = self.own_pid()?;
        let ip = self.ip_on(&self.ctl_network())?;
        let iface = self.interface_with(pid, &ip)?;
        let port = self.port.to_string();
        self.rule(op, &["-i", &iface, "-p", "tcp", "--dport", &port])
    }
}

/// Runs `args` in the network namespace of `pid` with this machine's tools (`ip`, `iptables`):
/// nothing is needed in the image and no capability in the container.
fn nsenter(pid: u32, args: &[&str]) -> Result<String> {
    let target = pid.to_string();
    let mut cmd = std::process::Command::new("nsenter");
    cmd.args(["-t", &target, "-n", "--"]).args(args);
    let out = crate::native::process::run(&mut cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Runtime for ContainerNode {
    fn start(&self) -> Result<()> {
        docker(&["start", &self.container]).map(drop)
    }

    fn check_alive(&self) -> Result<()> {
        match self.status().as_str() {
            "exited" | "dead" | "" => {
                let code = self.inspect("{{.State.ExitCode}}").unwrap_or_default();
                let mut tail = crate::native::process::tail_file(&self.log, 30);
                if let Ok(out) = docker(&["logs", "--tail", "10", &self.container]) {
                    tail.push_str(&out);
                }
                Err(Error::NodeStartFailed {
                    node: self.node.clone(),
                    reason: format!("container {} exited (code {code})", self.container),
                    log: self.log.clone(),
                    log_tail: tail,
                })
            }
            _ => Ok(()),
        }
    }

    fn pid(&self) -> Option<u32> {
        self.inspect("{{.State.Pid}}").ok()?.parse().ok().filter(|&p| p != 0)
    }

    fn own_cgroup(&self) -> bool {
        true
    }

    fn state(&self) -> ProcessState {
        match self.status().as_str() {
            "running" | "restarting" => ProcessState::Running,
            "paused" => ProcessState::Hung,
            _ => ProcessState::Stopped,
        }
    }

    fn hang(&self) -> Result<()> {
        docker(&["pause", &self.container]).map(drop)
    }

    fn unhang(&self) -> Result<()> {
        docker(&["unpause", &self.container]).map(drop)
    }

    fn crash(&self) -> Result<()> {
        if self.status() == "paused" {
            docker(&["unpause", &self.container])?;
        }
        docker(&["kill", &self.container])?;
        self.wait_status(|s| s != "running", "exit")
    }

    fn stop(&self) -> Result<()> {
        if self.status() == "paused" {
            docker(&["unpause", &self.container])?;
        }
        // The stop signal (SIGINT for PostgreSQL, SIGTERM for MariaDB) was set at create.
        docker(&["stop", "--time", "30", &self.container]).map(drop)
    }

    fn data_dir(&self) -> &Path {
        &self.data
    }

    fn log_path(&self) -> &Path {
        &self.log
    }

    fn replication_addr(&self) -> Addr {
        Addr::new(self.node.clone(), self.port)
    }

    fn destroy(&self) -> Result<()> {
        docker(&["rm", "--force", "--volumes", &self.container]).map(drop)
    }

    fn net(&self) -> Option<&dyn Net> {
        Some(self)
    }
}

impl Net for ContainerNode {
    fn cut_replication(&self) -> Result<()> {
        self.own_pid()?;
        docker(&["network", "disconnect", &self.repl_network(), &self.container]).map(drop)
    }

    /// Reconnects the node at its fixed replication address (the one the cluster's hosts file
    /// names it by), so its peers need no DNS to find it again, nor it them. Healing a node that
    /// is not cut is no error.
    fn heal_replication(&self) -> Result<()> {
        self.own_pid()?;
        let repl = self.repl_network();
        if self.ip_on(&repl).is_ok() {
            return Ok(());
        }
        let fixed = self.inspect(&format!("{{{{index .Config.Labels \"{REPL_IP_LABEL}\"}}}}"))?;
        let mut args = vec!["network", "connect"];
        // A cluster made by an older testkit has no label: Docker picks the address, as it did
        // when that cluster was made.
        if !fixed.is_empty() {
            args.extend(["--ip", &fixed]);
        }
        args.extend(["--alias", &self.node, &repl, &self.container]);
        docker(&args)?;
        let ip = self.ip_on(&repl)?;
        if !fixed.is_empty() && ip != fixed {
            return Err(self.invalid(format!(
                "reconnected to {repl} at {ip}, not at its fixed address {fixed}"
            )));
        }
        Ok(())
    }

    fn cut_clients(&self) -> Result<()> {
        self.client_rule("-I")
    }

    fn heal_clients(&self) -> Result<()> {
        self.client_rule("-D")
    }

    fn drop_from(&self, peer: &dyn Net) -> Result<()> {
        let ip = peer.replication_ip()?;
        self.rule("-I", &["-s", &ip])
    }

    fn undrop_from(&self, peer: &dyn Net) -> Result<()> {
        let ip = peer.replication_ip()?;
        self.rule("-D", &["-s", &ip])
    }

    fn replication_ip(&self) -> Result<String> {
        self.ip_on(&self.repl_network())
    }

    fn client_ip(&self) -> Result<String> {
        self.ip_on(&self.ctl_network())
    }

    fn gateway(&self) -> Result<String> {
        let repl = self.repl_network();
        let gw = docker(&[
            "network",
            "inspect",
            "--format",
            "{{(index .IPAM.Config 0).Gateway}}",
            &repl,
        ])?;
        if gw.is_empty() {
            return Err(self.invalid(format!("network {repl} has no gateway")));
        }
        Ok(gw)
    }
}
