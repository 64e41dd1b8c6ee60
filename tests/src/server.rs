//! A private `redis-server` on a free port in a temporary directory, for tests that kill,
//! restart, freeze (SIGSTOP) or configure Redis. Stopped (by pid) when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` process of the test's own.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl RedisServer {
    /// Starts one with persistence as the arguments say (e.g. `["--appendonly", "yes"]`).
    pub fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("event-bus-redis-{}", uuid::Uuid::new_v4().simple()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let mut server = Self {
            port,
            dir,
            args: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!("cannot start redis-server (is it on PATH?): {e}"),
        }
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_connection() {
                    if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Freezes it with SIGSTOP: its sockets stay open and the kernel keeps accepting what
    /// clients send, but nothing is answered until it resumes (as under a stalled host, a
    /// long fork or swapping). It resumes when the returned guard is dropped or
    /// [`Paused::resume`]d, so a failing test never leaves it stopped.
    pub fn pause(&self) -> Paused {
        match self.pid() {
            Some(pid) => Paused::stop(pid),
            None => panic!("redis-server on port {} is not running", self.port),
        }
    }

    /// Sends SIGCONT (harmless when it is not stopped).
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "-CONT");
        }
    }

    /// Kills it with SIGKILL (no shutdown save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (data comes back if persisted).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process stopped with SIGSTOP; dropping the guard (or [`Paused::resume`]) sends SIGCONT.
/// It holds only the pid, so it can be moved to another thread.
#[derive(Debug)]
#[must_use = "the process resumes when the guard is dropped"]
pub struct Paused {
    pid: u32,
    resumed: bool,
}

impl Paused {
    /// Sends SIGSTOP to `pid` (e.g. [`RedisServer::pid`]).
    pub fn stop(pid: u32) -> Self {
        signal(pid, "-STOP");
        Self {
            pid,
            resumed: false,
        }
    }

    /// Sends SIGCONT now.
    pub fn resume(mut self) {
        self.cont();
    }

    fn cont(&mut self) {
        if !self.resumed {
            self.resumed = true;
            signal(self.pid, "-CONT");
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.cont();
    }
}

/// `kill {signal} {pid}`; panics when it fails (except SIGCONT, which must never panic in a
/// drop: a failure there is logged).
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let ok = matches!(&status, Ok(s) if s.success());
    if !ok {
        if signal == "-CONT" {
            eprintln!("kill {signal} {pid} failed: {status:?}");
        } else {
            panic!("kill {signal} {pid} failed: {status:?}");
        }
    }
}
