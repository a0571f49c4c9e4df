//! CPU time of a process's control group, read from the host's cgroup filesystem (v1
//! `cpuacct`, or the v2 unified hierarchy).

use std::path::Path;
use std::time::Duration;

/// The CPU time used so far by the cgroup process `pid` is in (every process in it), or `None`
/// if it cannot be read.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cpu_time_in(Path::new("/sys/fs/cgroup"), &table)
}

/// [`cpu_time`] given the cgroup filesystem's root and the process's `/proc/<pid>/cgroup`.
fn cpu_time_in(root: &Path, table: &str) -> Option<Duration> {
    for line in table.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "cpuacct") {
            // v1: nanoseconds.
            let text =
                std::fs::read_to_string(root.join("cpuacct").join(path).join("cpuacct.usage"))
                    .ok()?;
            return text.trim().parse().ok().map(Duration::from_nanos);
        }
    }
    // v2: the unified hierarchy's line is `0::/path`; usage in microseconds.
    let path = table.lines().find_map(|l| l.strip_prefix("0::"))?.trim_start_matches('/');
    let stat = std::fs::read_to_string(root.join(path).join("cpu.stat")).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_layouts_are_read() {
        let root = std::env::temp_dir().join(format!("rwsplit-cgroup-{}", std::process::id()));
        let v1 = root.join("cpuacct/docker/abc");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("cpuacct.usage"), "1500000000\n").unwrap();
        let table = "4:memory:/docker/abc\n2:cpuacct,cpu:/docker/abc\n0::/\n";
        assert_eq!(cpu_time_in(&root, table), Some(Duration::from_millis(1_500)));
        let v2 = root.join("system.slice/docker-abc.scope");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
        let table = "0::/system.slice/docker-abc.scope\n";
        assert_eq!(cpu_time_in(&root, table), Some(Duration::from_micros(2_500)));
        assert_eq!(cpu_time_in(&root, "0::/missing\n"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
