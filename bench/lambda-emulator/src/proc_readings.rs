//! Readings from `/proc`: a process's CPU time, threads, memory and TCP peers, and the harness's
//! own thread's CPU time.

use crate::Result;

/// The process's own on-CPU time so far, in nanoseconds, summed over its live threads.
pub fn cpu_ns(pid: u32) -> std::io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// The number of threads the process has now (0 if it is gone).
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count())
}

/// A `kB` field of `/proc/<pid>/status`, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// The remote ends of the process's TCP sockets: at the first `/next`, anything but the Runtime
/// API would be a network call made during init.
pub fn tcp_peers(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    Some(
                        target
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut peers = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && inodes.iter().any(|inode| inode == fields[9]) {
                // rem_address is HEX_IP:HEX_PORT; the port is what tells the peers apart here.
                let port = fields[2]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .unwrap_or(0);
                if port != 0 {
                    peers.push(format!("port {port}"));
                }
            }
        }
    }
    peers
}

/// The calling thread's own on-CPU time so far, in nanoseconds.
pub fn thread_cpu_ns() -> Result<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .map_err(|e| e.to_string())?
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .ok_or_else(|| "unreadable /proc/thread-self/schedstat".to_owned())
}
