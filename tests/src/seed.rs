//! A harness for the seed model: tests drive a small, faithful model of the seed's event bus
//! (alga-psa's TypeScript `EventBus`, with the real `zod` and `redis` npm packages) to check
//! that what we write, the seed accepts, and what the seed writes, we read.
//!
//! The model is `tests/seed-model/seed.mjs` (its header says which alga-psa file each part
//! follows). It runs under Node.js 20+; [`SeedModel::new`] installs its npm dependencies from
//! the committed `package-lock.json` (`npm ci`) the first time any test process needs them,
//! under a lock file so parallel test binaries do not race, and panics with one actionable line
//! when `node` or `npm` is missing.
//!
//! Every call runs one CLI command, blocking until it exits, and returns the JSON document it
//! printed. From async tests call it directly (it blocks that worker thread for the command's
//! duration) or through `tokio::task::spawn_blocking`.
//!
//! ```no_run
//! use event_bus_tests::seed::{ConsumeOpts, PublishOpts, SeedModel};
//! use serde_json::json;
//!
//! let seed = SeedModel::new();
//! let url = event_bus_tests::redis_url();
//! let prefix = event_bus_tests::unique_prefix("seedmodel");
//! let published = seed.publish(
//!     &url,
//!     &PublishOpts {
//!         prefix: prefix.clone(),
//!         workflow_stream: format!("{prefix}:workflow"),
//!         ..PublishOpts::new("TICKET_UPDATED")
//!     },
//!     &json!({"tenantId": "…", "ticketId": "…", "userId": "…"}),
//! );
//! let read = seed.consume(&url, &ConsumeOpts { prefix, count: 1, ..ConsumeOpts::new("TICKET_UPDATED") });
//! assert_eq!(read["handled"][0]["id"], published["envelope"]["id"]);
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// The seed's stream prefix (`alga-psa:` + `event-stream:`, without the trailing colon).
pub const SEED_PREFIX: &str = "alga-psa:event-stream";
/// The only stream the seed's workflow runtime reads.
pub const WORKFLOW_STREAM: &str = "workflow:events:global";
/// The seed's one consumer group.
pub const SEED_GROUP: &str = "event-processors";

/// How stream keys are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Today's seed: `{prefix}:{channel}:{EVENT_TYPE}`, fields `event`, `channel`.
    #[default]
    Channels,
    /// The first generation: `{prefix}:{EVENT_TYPE}`, field `event` only, no workflow stream.
    Flat,
}

impl Layout {
    fn arg(self) -> &'static str {
        match self {
            Layout::Channels => "channels",
            Layout::Flat => "flat",
        }
    }
}

/// Which of the seed's two copies of `EventBus.publish` writes the workflow entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Publisher {
    /// `server/src/lib/eventBus/index.ts`: the workflow fields LIVE-SEED.md lists.
    #[default]
    Server,
    /// `packages/event-bus/src/eventBus.ts` (what the ticket publishers import): the same, with
    /// `workflow_correlation_key` after `execution_id`.
    Package,
}

impl Publisher {
    fn arg(self) -> &'static str {
        match self {
            Publisher::Server => "server",
            Publisher::Package => "package",
        }
    }
}

/// Options of [`SeedModel::publish`]; start from [`PublishOpts::new`].
#[derive(Debug, Clone)]
pub struct PublishOpts {
    /// Stream prefix (default [`SEED_PREFIX`]); tests pass a unique one.
    pub prefix: String,
    pub layout: Layout,
    pub event_type: String,
    /// Channels to publish to, one seed `EventBus.publish` each, in order; empty means `global`.
    pub channels: Vec<String>,
    /// Envelope id; default a fresh UUID v4 per channel, as the seed does.
    pub id: Option<String>,
    /// Envelope timestamp; default `new Date().toISOString()` per channel.
    pub timestamp: Option<String>,
    /// Where a `global` publish's workflow entry goes (default [`WORKFLOW_STREAM`]); tests pass
    /// a unique one.
    pub workflow_stream: String,
    pub publisher: Publisher,
}

impl PublishOpts {
    /// The seed's defaults for `event_type`: prefix [`SEED_PREFIX`], channel `global`.
    pub fn new(event_type: &str) -> Self {
        PublishOpts {
            prefix: SEED_PREFIX.to_owned(),
            layout: Layout::Channels,
            event_type: event_type.to_owned(),
            channels: Vec::new(),
            id: None,
            timestamp: None,
            workflow_stream: WORKFLOW_STREAM.to_owned(),
            publisher: Publisher::Server,
        }
    }
}

/// Options of [`SeedModel::consume`]; start from [`ConsumeOpts::new`].
#[derive(Debug, Clone)]
pub struct ConsumeOpts {
    pub prefix: String,
    pub layout: Layout,
    pub event_type: String,
    /// Default `global`.
    pub channel: String,
    /// Default [`SEED_GROUP`].
    pub group: String,
    /// Default `consumer-{pid of node}`.
    pub consumer: Option<String>,
    /// Stop once this many entries were processed (handled, dropped, left pending or
    /// dead-lettered); a read batch (`COUNT 10`) is always processed whole.
    pub count: usize,
    /// Stop reading after this long.
    pub timeout: Duration,
    /// Pending entries idle longer than this are claimed and processed again (seed: 30 s).
    pub claim_timeout: Duration,
    /// A claimed entry whose delivery count exceeds this is dead-lettered (seed: 10).
    pub max_deliveries: u32,
    /// The seed's de-duplication through `processed_events:{tenant}` and
    /// `processed_event_handlers:{tenant}` (default on, as in the seed). Those keys are not
    /// under the prefix: tests delete them for their tenants.
    pub dedup: bool,
    /// The handler's key in `processed_event_handlers:{tenant}` (default `seed-model`).
    pub handler_key: String,
}

impl ConsumeOpts {
    /// The seed's defaults for `event_type`, reading one entry for at most 10 s.
    pub fn new(event_type: &str) -> Self {
        ConsumeOpts {
            prefix: SEED_PREFIX.to_owned(),
            layout: Layout::Channels,
            event_type: event_type.to_owned(),
            channel: "global".to_owned(),
            group: SEED_GROUP.to_owned(),
            consumer: None,
            count: 1,
            timeout: Duration::from_secs(10),
            claim_timeout: Duration::from_secs(30),
            max_deliveries: 10,
            dedup: true,
            handler_key: "seed-model".to_owned(),
        }
    }
}

/// A model command that failed: it exited non-zero or printed something that is not JSON.
#[derive(Debug, Clone)]
pub struct SeedModelError {
    pub args: Vec<String>,
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for SeedModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed model `{}` failed (exit {:?}): {}{}",
            self.args.join(" "),
            self.status,
            self.stderr.trim(),
            if self.stdout.trim().is_empty() {
                String::new()
            } else {
                format!(" [stdout: {}]", self.stdout.trim())
            }
        )
    }
}

impl std::error::Error for SeedModelError {}

/// A handle on the installed seed model (`tests/seed-model`).
#[derive(Debug, Clone)]
pub struct SeedModel {
    dir: PathBuf,
}

impl Default for SeedModel {
    fn default() -> Self {
        Self::new()
    }
}

impl SeedModel {
    /// The model, installed: runs `npm ci --no-audit --no-fund` in `tests/seed-model` once if
    /// its `node_modules` is missing. Panics with an actionable message when Node.js or npm is
    /// missing or the install fails.
    pub fn new() -> Self {
        static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        let installed = INSTALLED.get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seed-model");
            require_tool("node")?;
            ensure_installed(&dir)?;
            Ok(dir)
        });
        match installed {
            Ok(dir) => SeedModel { dir: dir.clone() },
            Err(message) => panic!("{message}"),
        }
    }

    /// The model's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `validate --event-type T`: the seed consumer's checks on an `event` field's text
    /// (`JSON.parse`, the envelope schema, then `EventSchemas[T]`). Returns
    /// `{"ok":true,"consumer":"handled","parsed":…}` or
    /// `{"ok":false,"stage":"json"|"envelope"|"payload","consumer":"pending"|"dropped","issues":[…]}`.
    pub fn validate(&self, event_type: &str, envelope_json: &str) -> Value {
        self.expect(
            &["validate", "--event-type", event_type],
            Some(envelope_json),
        )
    }

    /// `publish`: what the seed's `EventBus.publish` does with `payload`, once per channel.
    /// Returns `{"envelope":…, "entries":[{"channel","stream","id","envelope"}],
    /// "workflow":{"stream","id","fields"}|null, "refused":[{"channel","stage","issues"}]}`;
    /// a refused publish writes nothing (the seed logs and swallows it).
    pub fn publish(&self, url: &str, opts: &PublishOpts, payload: &Value) -> Value {
        let mut args: Vec<String> = [
            "publish",
            "--url",
            url,
            "--prefix",
            &opts.prefix,
            "--layout",
            opts.layout.arg(),
            "--event-type",
            &opts.event_type,
            "--workflow-stream",
            &opts.workflow_stream,
            "--publisher",
            opts.publisher.arg(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for channel in &opts.channels {
            args.extend(["--channel".to_owned(), channel.clone()]);
        }
        if let Some(id) = &opts.id {
            args.extend(["--id".to_owned(), id.clone()]);
        }
        if let Some(timestamp) = &opts.timestamp {
            args.extend(["--timestamp".to_owned(), timestamp.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.expect(&args, Some(&payload.to_string()))
    }

    /// `consume`: the seed's consumer loop on one stream, with a handler that records what it
    /// is given. Returns `{"stream", "handled":[envelopes as zod returned them],
    /// "dropped":[{"id","issues"}], "failed":[{"id","error"}] (left pending),
    /// "skipped":[{"id","eventId","reason"}] (de-duplicated), "deadLettered":[{"id","deliveries","deadLetterId"}]}`.
    pub fn consume(&self, url: &str, opts: &ConsumeOpts) -> Value {
        let count = opts.count.to_string();
        let timeout = opts.timeout.as_millis().to_string();
        let claim_timeout = opts.claim_timeout.as_millis().to_string();
        let max_deliveries = opts.max_deliveries.to_string();
        let mut args = vec![
            "consume",
            "--url",
            url,
            "--prefix",
            &opts.prefix,
            "--layout",
            opts.layout.arg(),
            "--event-type",
            &opts.event_type,
            "--channel",
            &opts.channel,
            "--group",
            &opts.group,
            "--count",
            &count,
            "--timeout-ms",
            &timeout,
            "--claim-timeout-ms",
            &claim_timeout,
            "--max-deliveries",
            &max_deliveries,
            "--handler-key",
            &opts.handler_key,
        ];
        if let Some(consumer) = &opts.consumer {
            args.extend(["--consumer", consumer]);
        }
        if !opts.dedup {
            args.push("--no-dedup");
        }
        self.expect(&args, None)
    }

    /// `dead-letter`: the seed's `deadLetterMessage` for entry `entry_id` of `stream` (group
    /// [`SEED_GROUP`]). Returns `{"id": new entry id or null if already dead-lettered,
    /// "deadLetterStream", "acked"}`.
    pub fn dead_letter(&self, url: &str, stream: &str, entry_id: &str, deliveries: u64) -> Value {
        let deliveries = deliveries.to_string();
        self.expect(
            &[
                "dead-letter",
                "--url",
                url,
                "--stream",
                stream,
                "--entry-id",
                entry_id,
                "--deliveries",
                &deliveries,
            ],
            None,
        )
    }

    /// Runs `node seed.mjs <args…>` with `stdin`, returning the JSON it printed.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Value, SeedModelError> {
        let error = |status, stdout: &[u8], stderr: String| SeedModelError {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            status,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr,
        };
        let mut child = Command::new("node")
            .arg(self.dir.join("seed.mjs"))
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| error(None, b"", format!("cannot start node: {e}")))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.unwrap_or_default().as_bytes())
                .map_err(|e| error(None, b"", format!("cannot write stdin: {e}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| error(None, b"", format!("cannot wait for node: {e}")))?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(error(output.status.code(), &output.stdout, stderr));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| {
            error(
                output.status.code(),
                &output.stdout,
                format!("stdout is not one JSON document ({e}); stderr: {stderr}"),
            )
        })
    }

    fn expect(&self, args: &[&str], stdin: Option<&str>) -> Value {
        match self.run(args, stdin) {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Checks that `tool` runs, with a one-line message saying what to install if not.
fn require_tool(tool: &str) -> Result<(), String> {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "seed model: `{tool} --version` failed ({}); install Node.js 20+ with npm and make `{tool}` runnable",
            out.status
        )),
        Err(e) => Err(format!(
            "seed model: `{tool}` not found on PATH ({e}); install Node.js 20+ with npm (e.g. `apt-get install nodejs npm`) to run the seed-interop tests"
        )),
    }
}

/// npm writes `node_modules/.package-lock.json` at the end of a complete install.
fn is_installed(dir: &Path) -> bool {
    dir.join("node_modules/.package-lock.json").is_file()
}

fn ensure_installed(dir: &Path) -> Result<(), String> {
    if is_installed(dir) {
        return Ok(());
    }
    let _lock = InstallLock::acquire(&dir.join(".npm-install.lock"))?;
    if is_installed(dir) {
        return Ok(()); // another test process installed it while we waited
    }
    require_tool("npm")?;
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("seed model: cannot run `npm ci` in {}: {e}", dir.display()))?;
    if !out.status.success() {
        return Err(format!(
            "seed model: `npm ci --no-audit --no-fund` failed in {} ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// An exclusive lock across processes: a file created with `create_new`, removed on drop.
/// A lock older than [`InstallLock::STALE`] is taken to belong to a process that died.
#[derive(Debug)]
struct InstallLock {
    path: PathBuf,
}

impl InstallLock {
    const STALE: Duration = Duration::from_secs(600);

    fn acquire(path: &Path) -> Result<Self, String> {
        let started = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut file) => {
                    let _ = writeln!(file, "{}", std::process::id());
                    return Ok(InstallLock {
                        path: path.to_owned(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|age| age > Self::STALE) {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    if started.elapsed() > Self::STALE {
                        return Err(format!(
                            "seed model: waited {:?} for {}; remove it if no install is running",
                            Self::STALE,
                            path.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(format!("seed model: cannot create {}: {e}", path.display())),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
