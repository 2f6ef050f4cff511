//! Servers as child processes that cannot outlive their owner.

use std::{
    collections::VecDeque,
    process::Stdio,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
};

use crate::{Result, TestbedError};

const KEPT_LOG_LINES: usize = 200;

/// A child process whose output is kept (the last lines) for error messages, and which is killed
/// when this value is dropped — and by the kernel if our process dies first. It leads its own
/// process group, and the whole group is killed with it: what it started itself (chromedriver's
/// Chromium, say) does not outlive it either.
#[derive(Debug)]
pub struct ServerProcess {
    name: &'static str,
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    /// Starts `command`, capturing its stdout and stderr.
    pub fn spawn(name: &'static str, mut command: Command) -> Result<ServerProcess> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C at the terminal reaches only us, and we tear down in order.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                // The kernel kills the server if our thread dies, even by SIGKILL, when no Drop can run.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let program = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        let mut child = command
            .spawn()
            .map_err(TestbedError::io(format!("starting {name} ({program})")))?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(KEPT_LOG_LINES)));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(keep_lines(out, log.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(keep_lines(err, log.clone()));
        }
        Ok(ServerProcess { name, child, log })
    }

    /// The name it was spawned under, as errors and logs show it (`CoreDNS`, `thanos query`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The operating system's process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown exit status: {e}")),
        }
    }

    /// The last `n` lines the process printed, oldest first.
    pub fn last_log_lines(&self, n: usize) -> String {
        let log = self.log.lock().expect("log writer panicked");
        let skip = log.len().saturating_sub(n);
        log.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills the process and waits for it, so that its port is free when this returns.
    pub async fn stop(mut self) -> Result<()> {
        self.kill_group();
        if self.child.try_wait().ok().flatten().is_none() {
            self.child
                .kill()
                .await
                .map_err(TestbedError::io(format!("stopping {}", self.name)))?;
        }
        Ok(())
    }
}

impl ServerProcess {
    /// SIGKILL to the process's group (its id, as it leads it), while it has not been waited
    /// for: until then its id, and so its group, cannot be another's.
    fn kill_group(&self) {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: killpg only sends a signal; a group already gone is an ignored ESRCH.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_group();
    }
}

async fn keep_lines(stream: impl AsyncRead + Unpin, log: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut log = log.lock().expect("log reader panicked");
        if log.len() == KEPT_LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Waits up to 30 s (a busy machine's slack) for `condition`.
    async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether process `pid` has ended (gone, or a zombie not yet reaped).
    fn ended(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0;
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        gone || zombie
    }

    #[tokio::test]
    async fn output_is_kept_and_the_exit_is_seen() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo one; echo two >&2; exit 3"]);
        let mut process = ServerProcess::spawn("sh", command).unwrap();
        let mut status = None;
        wait_for("the exit", || {
            status = process.exit_status();
            status.is_some()
        })
        .await;
        assert!(status.unwrap().contains('3'));
        wait_for("both lines in the log", || {
            let log = process.last_log_lines(10);
            log.contains("one") && log.contains("two")
        })
        .await;
    }

    #[tokio::test]
    async fn drop_kills_the_process() {
        let mut command = Command::new("sleep");
        command.arg("600");
        let process = ServerProcess::spawn("sleep", command).unwrap();
        let pid = process.pid().unwrap() as i32;
        drop(process);
        wait_for("the process to end after drop", || ended(pid)).await;
    }

    #[tokio::test]
    async fn drop_kills_what_the_process_started_too() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 600 & echo $!; wait"]);
        let process = ServerProcess::spawn("sh", command).unwrap();
        let mut grandchild = 0;
        wait_for("the shell to print its child's id", || {
            grandchild = process.last_log_lines(1).trim().parse().unwrap_or(0);
            grandchild > 0
        })
        .await;
        assert!(!ended(grandchild));
        drop(process);
        wait_for("the shell's child to end with it", || ended(grandchild)).await;
    }
}
