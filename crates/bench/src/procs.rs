//! The real `propdesk` processes under test: started with their settings in the
//! environment, ready when their gRPC health check says SERVING, measured for peak
//! resident memory, stopped with SIGTERM as Kubernetes would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::BenchError;

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub struct Process {
    pub name: String,
    child: Child,
    /// Where its health check (and, for intake, the API) answers.
    pub address: String,
}

impl Process {
    /// Spawns `binary <args>` with `env`; its health listener goes on a free port named by
    /// `listen_variable`. Output goes to `<logs>/<name>.log`.
    pub async fn start(
        binary: &Path,
        name: &str,
        args: &[&str],
        env: &[(String, String)],
        listen_variable: &str,
        logs: &Path,
    ) -> Result<Process, BenchError> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .env_remove("PROPDESK_CONFIG")
            .env("PROPDESK__LOG__FILTER", "warn")
            .env(listen_variable, &address)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log);
        let child =
            command.spawn().map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", binary.display())))?;
        let mut process = Process { name: name.to_owned(), child, address };
        process.wait_serving(logs).await?;
        Ok(process)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    async fn wait_serving(&mut self, logs: &Path) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(BenchError::Setup(format!(
                    "{} exited with {status} while starting; see {}",
                    self.name,
                    logs.join(format!("{}.log", self.name)).display()
                )));
            }
            if let Ok(channel) = Channel::from_shared(self.url())?.connect().await {
                let check = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
                if check.is_ok_and(|reply| reply.get_ref().status == ServingStatus::Serving as i32) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BenchError::Setup(format!("{} did not become SERVING on {} within 60 s", self.name, self.address)))
    }

    /// The process's peak resident set so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64, BenchError> {
        peak_rss_mib(self.child.id())
    }

    /// CPU time the process has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        Ok(cpu_of_stat(&stat).1)
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s).
    pub fn stop(mut self) -> Result<(), BenchError> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                self.child.kill()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A run that fails midway leaves nothing running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `/proc/<pid>/stat` line's command name and CPU seconds (user + system).
fn cpu_of_stat(stat: &str) -> (&str, f64) {
    // The name is in parentheses and may hold spaces: the fields after its ')' start at
    // the state; utime and stime are the 12th and 13th of them, in ticks of 1/100 s.
    let (head, after_name) = stat.rsplit_once(')').unwrap_or_default();
    let name = head.split_once('(').map(|(_, name)| name).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or_default();
    (name, (ticks(11) + ticks(12)) / 100.0)
}

/// CPU seconds used so far by every process whose command name is `name` (the database's
/// backends, the broker's VM), for the share of the machine each side took.
pub fn cpu_seconds_of_command(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .map(|stat| {
            let (command, seconds) = cpu_of_stat(&stat);
            if command == name { seconds } else { 0.0 }
        })
        .sum()
}

/// `VmHWM` of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Result<f64, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = kib_field(&status, "VmHWM").ok_or_else(|| BenchError::Setup(format!("no VmHWM for process {pid}")))?;
    Ok(kib / 1024.0)
}

/// The value of a `Name:   123 kB` line of a `/proc` file, in KiB.
pub fn kib_field(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
}

/// The release `propdesk` binary beside this one.
pub fn propdesk_binary() -> Result<PathBuf, BenchError> {
    let me = std::env::current_exe()?;
    let binary = me.with_file_name("propdesk");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(BenchError::Setup(format!("{} not found: build it with `cargo build --release`", binary.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_of_this_process_is_read_from_proc() {
        let mib = peak_rss_mib(std::process::id()).expect("VmHWM");
        assert!(mib > 0.5 && mib < 4096.0, "{mib}");
    }
}
