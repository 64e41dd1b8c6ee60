//! A private `redis-server` on a free port in a temporary directory, for tests that kill,
//! restart, freeze (SIGSTOP) or configure Redis (including TLS only and a password, see
//! [`ServerOptions`]). Stopped (by pid) when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` process of the test's own.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    options: ServerOptions,
    child: Option<Child>,
}

/// How a [`RedisServer`] runs, beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra `redis-server` arguments.
    pub args: Vec<String>,
    /// Serve TLS only (`--port 0 --tls-port`), with these certificates.
    pub tls: Option<ServerTls>,
    /// The `default` user's password (`--requirepass`).
    pub password: Option<String>,
}

/// The TLS side of a [`RedisServer`] (see [`crate::tls::Pki::server_tls`]).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server's certificate (PEM file).
    pub cert_file: PathBuf,
    /// The server's private key (PEM file).
    pub key_file: PathBuf,
    /// The CA that signs client certificates (PEM file).
    pub ca_file: PathBuf,
    /// The CA certificate (PEM), for clients to trust.
    pub ca_pem: String,
    /// A client certificate and key (PEM) signed by the CA, for mutual TLS.
    pub client: (String, String),
    /// Whether clients must present a certificate (`tls-auth-clients`).
    pub auth_clients: bool,
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
        Self::start_with(ServerOptions {
            args: extra.iter().map(|s| (*s).to_owned()).collect(),
            ..ServerOptions::default()
        })
    }

    /// Starts one as `options` say.
    pub fn start_with(options: ServerOptions) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("event-bus-redis-{}", uuid::Uuid::new_v4().simple()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let mut server = Self {
            port,
            dir,
            options,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        match &self.options.tls {
            None => command.arg("--port").arg(self.port.to_string()),
            Some(tls) => command
                .args(["--port", "0", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.cert_file)
                .arg("--tls-key-file")
                .arg(&tls.key_file)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca_file)
                .arg("--tls-auth-clients")
                .arg(if tls.auth_clients { "yes" } else { "no" }),
        };
        if let Some(password) = &self.options.password {
            command.arg("--requirepass").arg(password);
        }
        let child = command
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .args(&self.options.args)
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
            if let Ok(client) = self.admin_client() {
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

    /// Its URL (`rediss://` when it serves TLS; no credentials).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A client with every right: the `default` user's password, and over TLS trusting its CA
    /// with the client certificate.
    pub fn admin_client(&self) -> redis::RedisResult<redis::Client> {
        let mut info: redis::ConnectionInfo = self.url().parse()?;
        if let Some(password) = &self.options.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        match &self.options.tls {
            None => redis::Client::open(info),
            Some(tls) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: tls.client.0.clone().into_bytes(),
                        client_key: tls.client.1.clone().into_bytes(),
                    }),
                    root_cert: Some(tls.ca_pem.clone().into_bytes()),
                },
            ),
        }
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
