//! [`SchemaSnapshot`]: the schemas of an application, committed as files, and a test that
//! fails when a change breaks consumers still running the version those files describe.
//!
//! One file per event type, `{dir}/{EVENT_TYPE}.json`, holding the schema of
//! [`json_schemas`](super::json_schemas). A check compares the registry with the files:
//!
//! - unchanged: passes;
//! - changed compatibly (a new optional field, a wider range): fails as out of date until the
//!   files are rewritten with `EVENT_BUS_UPDATE_SCHEMAS=1`, so the files always say what runs;
//! - changed incompatibly ([`check_compatible`]): fails, and the update does not rewrite it.
//!   Either publish the new shape as a new event type (`TICKET_UPDATED_V2`: the old type and
//!   its consumers keep working), or, when every consumer is upgraded together, acknowledge
//!   the break by raising the type's version, `#[event(version = 2)]`, then update;
//! - a new event type: fails until written by an update;
//! - a file whose event type is gone: fails until the file is deleted by hand (consumers of a
//!   retired type wait for events that no longer come).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::compat::{check_compatible, Incompatibility};
use super::json::VERSION_KEYWORD;

/// The environment variable that makes a check rewrite the snapshot (`1`).
pub const UPDATE_ENV: &str = "EVENT_BUS_UPDATE_SCHEMAS";

/// The committed schemas of an application, checked against the registry.
///
/// ```no_run
/// // tests/schemas.rs of an application
/// use event_bus_core::schema::SchemaSnapshot;
///
/// #[test]
/// fn event_schemas_stay_compatible() {
///     SchemaSnapshot::new(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas")).assert();
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SchemaSnapshot {
    dir: PathBuf,
    update: bool,
    only: Option<Vec<String>>,
}

/// What a passing check did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotReport {
    /// Event types whose schema matched its file.
    pub unchanged: Vec<String>,
    /// Event types whose file was written (new, changed, or a break acknowledged by a new
    /// version), when updating.
    pub written: Vec<String>,
}

/// Why a snapshot check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A snapshot file could not be read or written.
    #[error("schema snapshot {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A snapshot file is not JSON.
    #[error("schema snapshot {path} is not valid JSON: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// The schemas differ from the snapshot.
    #[error("{}", describe(.0))]
    Mismatch(Vec<SnapshotProblem>),
}

/// One difference between the registry and the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotProblem {
    /// The schema changed in a way that breaks consumers of the snapshot's version.
    Breaking {
        /// The event type.
        event_type: String,
        /// Its version in the snapshot and now (`#[event(version = N)]`).
        version: u32,
        /// Every break.
        incompatibilities: Vec<Incompatibility>,
    },
    /// The schema changed compatibly, or a break was acknowledged with a new version: the
    /// file is out of date.
    OutOfDate {
        /// The event type.
        event_type: String,
    },
    /// An event type without a file.
    New {
        /// The event type.
        event_type: String,
    },
    /// A file whose event type is no longer registered.
    Removed {
        /// The event type.
        event_type: String,
        /// Its file.
        path: PathBuf,
    },
}

fn describe(problems: &[SnapshotProblem]) -> String {
    let mut out = String::from("event schemas differ from the committed snapshot:");
    let mut fixable = false;
    for problem in problems {
        match problem {
            SnapshotProblem::Breaking {
                event_type,
                version,
                incompatibilities,
            } => {
                out.push_str(&format!(
                    "\n- {event_type}: BREAKING change for consumers of version {version}:"
                ));
                for i in incompatibilities {
                    out.push_str(&format!("\n    {i}"));
                }
                out.push_str(&format!(
                    "\n  Publish the new shape as a new event type (e.g. {event_type}_V2) so \
                     that consumers of {event_type} keep working, or, if every consumer is \
                     upgraded at once, acknowledge the break with #[event(version = {})] and \
                     update the snapshot.",
                    version + 1
                ));
            }
            SnapshotProblem::OutOfDate { event_type } => {
                fixable = true;
                out.push_str(&format!(
                    "\n- {event_type}: changed compatibly; the snapshot is out of date"
                ));
            }
            SnapshotProblem::New { event_type } => {
                fixable = true;
                out.push_str(&format!(
                    "\n- {event_type}: new event type, no snapshot yet"
                ));
            }
            SnapshotProblem::Removed { event_type, path } => out.push_str(&format!(
                "\n- {event_type}: no longer registered; if it is retired, delete {}",
                path.display()
            )),
        }
    }
    if fixable {
        out.push_str(&format!(
            "\nRun the test again with {UPDATE_ENV}=1 to update the snapshot, and commit it."
        ));
    }
    out
}

/// The version a schema records (`x-event-bus-version`, 1 when absent).
fn version_of(schema: &Value) -> u32 {
    schema
        .get(VERSION_KEYWORD)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(1)
}

impl SchemaSnapshot {
    /// The snapshot in `dir`; rewritten by a check when `EVENT_BUS_UPDATE_SCHEMAS=1`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let update = std::env::var(UPDATE_ENV).is_ok_and(|v| v == "1" || v == "true");
        Self {
            dir: dir.into(),
            update,
            only: None,
        }
    }

    /// Whether a check rewrites the files it may (default: from `EVENT_BUS_UPDATE_SCHEMAS`).
    pub fn update(mut self, update: bool) -> Self {
        self.update = update;
        self
    }

    /// Checks only these event types (default: every registered one, and every file).
    pub fn only<I, S>(mut self, event_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = Some(event_types.into_iter().map(Into::into).collect());
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks the registered event types ([`json_schemas`](super::json_schemas)).
    pub fn check(&self) -> Result<SnapshotReport, SnapshotError> {
        self.check_schemas(super::json_schemas())
    }

    /// Checks the registered event types and panics with every problem, and how to fix it.
    #[track_caller]
    pub fn assert(&self) -> SnapshotReport {
        match self.check() {
            Ok(report) => report,
            Err(e) => panic!("{e}"),
        }
    }

    /// Checks `schemas` (event type to envelope schema) against the snapshot.
    pub fn check_schemas(
        &self,
        schemas: BTreeMap<String, Value>,
    ) -> Result<SnapshotReport, SnapshotError> {
        let wanted = |name: &str| {
            self.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == name))
        };
        let mut report = SnapshotReport::default();
        let mut problems = Vec::new();
        let mut writes: Vec<(String, &Value)> = Vec::new();
        for (event_type, schema) in schemas.iter().filter(|(name, _)| wanted(name)) {
            let path = self.file(event_type);
            let Some(old) = read(&path)? else {
                writes.push((event_type.clone(), schema));
                problems.push(SnapshotProblem::New {
                    event_type: event_type.clone(),
                });
                continue;
            };
            if old == *schema {
                report.unchanged.push(event_type.clone());
                continue;
            }
            let (old_version, new_version) = (version_of(&old), version_of(schema));
            match check_compatible(&old, schema) {
                Err(incompatibilities) if new_version <= old_version => {
                    problems.push(SnapshotProblem::Breaking {
                        event_type: event_type.clone(),
                        version: old_version,
                        incompatibilities,
                    });
                }
                _ => {
                    writes.push((event_type.clone(), schema));
                    problems.push(SnapshotProblem::OutOfDate {
                        event_type: event_type.clone(),
                    });
                }
            }
        }
        for (event_type, path) in self.files()? {
            if wanted(&event_type) && !schemas.contains_key(&event_type) {
                problems.push(SnapshotProblem::Removed { event_type, path });
            }
        }

        if self.update {
            for (event_type, schema) in writes {
                self.write(&event_type, schema)?;
                report.written.push(event_type);
            }
            problems.retain(|p| {
                !matches!(
                    p,
                    SnapshotProblem::New { .. } | SnapshotProblem::OutOfDate { .. }
                )
            });
        }
        if problems.is_empty() {
            Ok(report)
        } else {
            Err(SnapshotError::Mismatch(problems))
        }
    }

    fn file(&self, event_type: &str) -> PathBuf {
        self.dir.join(format!("{event_type}.json"))
    }

    /// The snapshot's files, by event type.
    fn files(&self) -> Result<Vec<(String, PathBuf)>, SnapshotError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SnapshotError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SnapshotError::Io {
                path: self.dir.clone(),
                source,
            })?;
            let path = entry.path();
            if let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            {
                files.push((name.to_owned(), path));
            }
        }
        files.sort();
        Ok(files)
    }

    fn write(&self, event_type: &str, schema: &Value) -> Result<(), SnapshotError> {
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| SnapshotError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let path = self.file(event_type);
        let mut text =
            serde_json::to_string_pretty(schema).map_err(|source| SnapshotError::Invalid {
                path: path.clone(),
                source,
            })?;
        text.push('\n');
        std::fs::write(&path, text).map_err(io_error(&path))
    }
}

/// A snapshot file's schema; `None` when there is no file.
fn read(path: &Path) -> Result<Option<Value>, SnapshotError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SnapshotError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| SnapshotError::Invalid {
            path: path.to_owned(),
            source,
        })
}

impl fmt::Display for SnapshotProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(std::slice::from_ref(self)))
    }
}
