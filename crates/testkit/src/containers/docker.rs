//! The `docker` command line, the only way the containers backend talks to the engine (no API
//! client dependency; the engine here is 20.10 without BuildKit, which the CLI hides).

use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Every container and network the testkit makes carries this label (value `1`).
pub(crate) const LABEL: &str = "rwsplit.testkit";
/// The run id of the cluster a container or network belongs to.
pub(crate) const RUN_LABEL: &str = "rwsplit.run";
/// The directory the cluster was started under (`cargo xtask itest` reaps by it).
pub(crate) const ROOT_LABEL: &str = "rwsplit.root";
/// A node container's fixed address on its cluster's replication network, which
/// `heal_replication` asks for again when it reconnects the node.
pub(crate) const REPL_IP_LABEL: &str = "rwsplit.repl-ip";

/// `docker <args>`: its standard output, trimmed, or an error naming the command and saying
/// what Docker said.
pub(crate) fn docker<S: AsRef<str>>(args: &[S]) -> Result<String> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let out = Command::new("docker").args(&args).stdin(Stdio::null()).output().map_err(|e| {
        Error::Docker {
            command: args.join(" "),
            output: format!(
                "could not run `docker` ({e}); the containers backend needs the Docker CLI and a \
                 running engine (apt-get install docker.io)"
            ),
        }
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(Error::Docker {
            command: args.join(" "),
            output: format!("{}: {}", out.status, stderr.trim()),
        })
    }
}

/// Like [`docker`], but a failure is only logged (teardown goes on with the rest).
pub(crate) fn docker_quiet<S: AsRef<str>>(args: &[S]) {
    if let Err(e) = docker(args) {
        tracing::debug!(error = %e, "docker command failed during cleanup");
    }
}

/// The names of the containers labelled `label=value`, running or not.
pub(crate) fn containers_labelled(label: &str, value: &str) -> Result<Vec<String>> {
    let filter = format!("label={label}={value}");
    let out = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])?;
    Ok(out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect())
}

/// The names of the networks labelled `label=value`.
pub(crate) fn networks_labelled(label: &str, value: &str) -> Result<Vec<String>> {
    let filter = format!("label={label}={value}");
    let out = docker(&["network", "ls", "--filter", &filter, "--format", "{{.Name}}"])?;
    Ok(out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect())
}
