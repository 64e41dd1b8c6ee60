//! The build-time cost of `#[derive(Event)]` and `#[subscriber]`.
//!
//! Generates an application of `N` event types (default 330) as four crates, in a workspace
//! under the target directory (`<target>/macro-cost/app`, never committed):
//!
//! - `baseline`: the structs with `serde` derives only, and per type one `serde_json` decode and
//!   encode in a function, so that the code is instantiated;
//! - `plain`: the handlers' own code without the framework: per type the same two async
//!   functions, taking the decoded struct, each with a function boxing its future as a `Send`
//!   future (what the application has to compile anyway to run them);
//! - `events`: the same structs with `#[derive(Event)]` and their `#[event(...)]` rules;
//! - `handlers`: two `#[subscriber]`s per type (one in three takes a `State<S>`).
//!
//! Then, for the dev and the release profile, it builds every dependency, and for each crate
//! removes only that crate's artifacts (`cargo clean -p`) and times `cargo build -p <crate>`,
//! both in wall-clock seconds and in CPU seconds (user + system of cargo and the compilers it
//! ran, which a busy machine disturbs far less than the wall clock). It prints a table with the
//! ratios `events / baseline` and `(events + handlers) / (baseline + plain)`: the application
//! with the macros against the same application written with serde alone.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-macrocost cargo run --release \
//!     --manifest-path benches/macro-cost/Cargo.toml -- [--events 330] [--runs 1] \
//!     [--profile dev|release|both] [--ir] [--generate-only] [--core <checkout>]
//! ```
//!
//! `--core` builds the application against another checkout's `event-bus-core` (e.g. one made
//! with `git archive`), to compare two versions of the macros.
//!
//! `--ir` also writes each crate's LLVM IR (release, `--emit=llvm-ir`) and prints its size and
//! where it goes (lines of IR by function path), to see what the remaining time is spent on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const CRATES: [&str; 4] = ["baseline", "plain", "events", "handlers"];

struct Options {
    events: usize,
    runs: usize,
    profiles: Vec<&'static str>,
    ir: bool,
    generate_only: bool,
    /// The checkout whose `event-bus-core` the application uses (default: this one).
    core: Option<PathBuf>,
}

fn main() {
    let options = parse_args();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let app = target.join("macro-cost").join("app");
    let core = options.core.clone().unwrap_or_else(|| repo.clone());
    generate(&repo, &core, &app, options.events);
    println!(
        "generated {} event types, {} subscribers in {}",
        options.events,
        2 * options.events,
        app.display()
    );
    if options.generate_only {
        return;
    }

    // Per profile, per crate: the median wall-clock and CPU seconds.
    let mut table: Vec<(&str, [(f64, f64); 4])> = Vec::new();
    for &profile in &options.profiles {
        let release = profile == "release";
        // Every dependency (and the crates) built once, so that only the crate measured is
        // compiled below.
        cargo(
            &app,
            &target,
            &["build", "-p", "plain", "-p", "handlers"],
            release,
        );
        let mut times = [(0.0, 0.0); 4];
        for (i, krate) in CRATES.iter().enumerate() {
            let (mut wall, mut cpu) = (Vec::new(), Vec::new());
            for _ in 0..options.runs {
                // Each crate's dependencies up to date, so that only it is rebuilt.
                let dependency = if matches!(*krate, "handlers") {
                    "events"
                } else {
                    "baseline"
                };
                cargo(&app, &target, &["build", "-p", dependency], release);
                cargo(&app, &target, &["clean", "-p", krate], release);
                let cpu_before = children_cpu_seconds();
                let start = Instant::now();
                cargo(&app, &target, &["build", "-p", krate], release);
                wall.push(start.elapsed().as_secs_f64());
                cpu.push(children_cpu_seconds() - cpu_before);
            }
            times[i] = (median(&mut wall), median(&mut cpu));
            eprintln!(
                "{profile:>7} {krate:<9} {:>7.1} s wall, {:>7.1} s CPU  (runs: {wall:.1?} wall, {cpu:.1?} CPU)",
                times[i].0, times[i].1
            );
        }
        table.push((profile, times));
    }

    println!();
    println!(
        "| profile | baseline | plain | events | handlers | events / baseline | (events + handlers) / (baseline + plain) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (profile, [baseline, plain, events, handlers]) in &table {
        for (what, pick) in [("wall", 0), ("CPU", 1)] {
            let t = |x: &(f64, f64)| if pick == 0 { x.0 } else { x.1 };
            println!(
                "| {profile} ({what}) | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.2} | {:.2} |",
                t(baseline),
                t(plain),
                t(events),
                t(handlers),
                t(events) / t(baseline),
                (t(events) + t(handlers)) / (t(baseline) + t(plain))
            );
        }
    }

    if options.ir {
        println!();
        for krate in CRATES {
            llvm_ir(&app, &target, krate);
        }
    }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// User + system CPU seconds of this process's waited-for children (and theirs): fields
/// `cutime` and `cstime` of `/proc/self/stat`, in clock ticks of 1/100 s.
fn children_cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable");
    let after_name = stat.rsplit_once(')').expect("a stat line").1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3 of the line, so field N is at index N - 3.
    let ticks = |n: usize| fields[n - 3].parse::<f64>().expect("a tick count");
    (ticks(16) + ticks(17)) / 100.0
}

fn parse_args() -> Options {
    let mut options = Options {
        events: 330,
        runs: 1,
        profiles: vec!["dev", "release"],
        ir: false,
        generate_only: false,
        core: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--events" | "-n" => {
                options.events = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--events takes a number"))
            }
            "--runs" => {
                options.runs = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--runs takes a number"))
            }
            "--profile" => {
                options.profiles = match value().as_str() {
                    "dev" => vec!["dev"],
                    "release" => vec!["release"],
                    "both" => vec!["dev", "release"],
                    _ => usage("--profile is dev, release or both"),
                }
            }
            "--ir" => options.ir = true,
            "--generate-only" => options.generate_only = true,
            "--core" => options.core = Some(PathBuf::from(value())),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    if options.events == 0 || options.runs == 0 {
        usage("--events and --runs must be at least 1");
    }
    options
}

fn usage(message: &str) -> ! {
    eprintln!("{message}");
    eprintln!(
        "usage: macro-cost [--events N] [--runs N] [--profile dev|release|both] [--ir] [--generate-only] [--core DIR]"
    );
    std::process::exit(2);
}

/// Runs cargo in the generated workspace; its output goes to `<app>/cargo.log`, shown on failure.
fn cargo(app: &Path, target: &Path, args: &[&str], release: bool) {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command
        .args(args)
        .current_dir(app)
        .arg("--target-dir")
        .arg(target)
        .arg("--quiet");
    if release {
        command.arg("--release");
    }
    let log = app.join("cargo.log");
    let output = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("cargo runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    fs::write(&log, &text).expect("the log is written");
    if !output.status.success() {
        eprintln!("{text}");
        eprintln!("cargo {} failed", args.join(" "));
        std::process::exit(1);
    }
}

/// Writes the crate's release LLVM IR and prints how big it is and what it is made of.
fn llvm_ir(app: &Path, target: &Path, krate: &str) {
    cargo(app, target, &["clean", "-p", krate], true);
    let deps = target.join("release").join("deps");
    let prefix = format!("{krate}-");
    for entry in fs::read_dir(&deps).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".ll") {
            let _ = fs::remove_file(entry.path());
        }
    }
    cargo(
        app,
        target,
        &["rustc", "-p", krate, "--lib", "--", "--emit=llvm-ir"],
        true,
    );
    let mut lines = 0usize;
    let mut functions = 0usize;
    let mut by_path: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for entry in fs::read_dir(&deps).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(&prefix) && name.ends_with(".ll")) {
            continue;
        }
        let text = fs::read_to_string(entry.path()).expect("the IR is readable");
        let mut current: Option<String> = None;
        for line in text.lines() {
            lines += 1;
            if line.starts_with("define ") {
                functions += 1;
                let key = line
                    .split('@')
                    .nth(1)
                    .and_then(|rest| rest.split('(').next())
                    .map(|symbol| group(&demangle(symbol.trim_matches('"'))))
                    .unwrap_or_else(|| "?".to_owned());
                by_path.entry(key.clone()).or_default().1 += 1;
                current = Some(key);
            }
            if let Some(key) = &current {
                by_path.entry(key.clone()).or_default().0 += 1;
                if line == "}" {
                    current = None;
                }
            }
        }
    }
    println!("{krate}: {lines} lines of LLVM IR (release), {functions} functions");
    let mut top: Vec<(String, (usize, usize))> = by_path.into_iter().collect();
    top.sort_by_key(|entry| std::cmp::Reverse(entry.1 .0));
    for (path, (lines, count)) in top.into_iter().take(25) {
        println!("  {lines:>9} lines {count:>6} fns  {path}");
    }
}

/// A legacy-mangled Rust symbol (`_ZN4core3ptr13drop_in_place17h...E`) as a path.
fn demangle(symbol: &str) -> String {
    let Some(mut rest) = symbol.strip_prefix("_ZN") else {
        return symbol.to_owned();
    };
    let mut parts: Vec<String> = Vec::new();
    while let Some(digits) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&n| n > 0) {
        let Ok(len) = rest[..digits].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(digits..digits + len) else {
            break;
        };
        parts.push(part.to_owned());
        rest = &rest[digits + len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
    {
        parts.pop();
    }
    let path = parts.join("::");
    path.replace("$LT$", "<")
        .replace("$GT$", ">")
        .replace("$u20$", " ")
        .replace("$u7b$", "{")
        .replace("$u7d$", "}")
        .replace("$RF$", "&")
        .replace("$C$", ",")
        .replace("..", "::")
        .replace("$u27$", "'")
}

/// The group a function's IR is counted in: its path with the generated type and function
/// names (which differ per event type) folded into `*`.
fn group(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, word) in path.split("::").enumerate() {
        if i > 0 {
            out.push_str("::");
        }
        let folded = word.trim_start_matches('_').starts_with("Ev")
            && word.trim_start_matches('_')[2..].starts_with(|c: char| c.is_ascii_digit());
        if folded
            || word.starts_with("audit_")
            || word.starts_with("project_")
            || word.starts_with("roundtrip_")
            || word.starts_with("run_")
        {
            out.push('*');
            // keep a closing `>` or the rest of an impl path
            if let Some(close) = word.find('>') {
                out.push_str(&word[close..]);
            }
        } else {
            out.push_str(word);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The generated application.

/// One field an event type may have: name, type, `#[event(...)]` rules.
struct Field {
    name: &'static str,
    ty: &'static str,
    rules: &'static str,
}

const FIELDS: &[Field] = &[
    Field {
        name: "title",
        ty: "String",
        rules: "non_empty, length(max = 200)",
    },
    Field {
        name: "description",
        ty: "Option<String>",
        rules: "length(max = 2000)",
    },
    Field {
        name: "priority",
        ty: "Option<u8>",
        rules: "range(min = 1, max = 5)",
    },
    Field {
        name: "tags",
        ty: "Vec<String>",
        rules: "length(max = 32)",
    },
    Field {
        name: "changes",
        ty: "Option<serde_json::Map<String, serde_json::Value>>",
        rules: "length(max = 64)",
    },
    Field {
        name: "attributes",
        ty: "std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>",
        rules: "",
    },
    Field {
        name: "actor_id",
        ty: "Option<String>",
        rules: "uuid",
    },
    Field {
        name: "amount",
        ty: "f64",
        rules: "range(min = 0, max = 1000000)",
    },
    Field {
        name: "status",
        ty: "String",
        rules: "non_empty",
    },
    Field {
        name: "previous_status",
        ty: "Option<String>",
        rules: "",
    },
    Field {
        name: "assigned_to",
        ty: "Option<uuid::Uuid>",
        rules: "",
    },
    Field {
        name: "metadata",
        ty: "std::collections::HashMap<String, serde_json::Value>",
        rules: "",
    },
    Field {
        name: "email",
        ty: "String",
        rules: "custom = crate::checks::email",
    },
    Field {
        name: "occurred_at",
        ty: "String",
        rules: "non_empty",
    },
    Field {
        name: "line_items",
        ty: "Vec<crate::LineItem>",
        rules: "length(max = 500)",
    },
    Field {
        name: "retry_count",
        ty: "u32",
        rules: "range(max = 10)",
    },
    Field {
        name: "comment",
        ty: "Option<String>",
        rules: "non_empty, length(min = 1, max = 5000)",
    },
];

const NOUNS: &[&str] = &[
    "Ticket", "Invoice", "Project", "Task", "Company", "Contact", "Asset", "Schedule", "Comment",
    "Document", "Payment", "Contract", "Device", "Alert", "User", "Team", "Tag", "Board", "Survey",
    "Workflow", "Credit", "Plan", "Service", "Quote", "Order", "Shipment", "Report", "Session",
    "Message", "Approval",
];
const VERBS: &[&str] = &[
    "Created",
    "Updated",
    "Deleted",
    "Assigned",
    "Closed",
    "Reopened",
    "Archived",
    "Restored",
    "Commented",
    "Escalated",
    "Synced",
];

struct EventType {
    index: usize,
    ident: String,
    event_type: String,
    /// 0: `Uuid` tenant, 1: `String` holding a UUID, 2: `tenant(any_string)`.
    tenant: usize,
    fields: Vec<&'static Field>,
    channels: bool,
    none_as_null: bool,
}

fn event_types(n: usize) -> Vec<EventType> {
    (0..n)
        .map(|i| {
            let noun = NOUNS[i % NOUNS.len()];
            let verb = VERBS[(i / NOUNS.len()) % VERBS.len()];
            let round = i / (NOUNS.len() * VERBS.len());
            // `Ev<i>` keeps names unique for any N and lets the IR report fold them.
            let ident = format!("Ev{i}{noun}{verb}");
            let event_type = if round == 0 {
                format!("{}_{}", upper(noun), upper(verb))
            } else {
                format!("{}_{}_{round}", upper(noun), upper(verb))
            };
            let fields = FIELDS
                .iter()
                .enumerate()
                .filter(|(k, _)| (i * 7 + k * 13 + i / 5) % 5 < 3)
                .map(|(_, f)| f)
                .collect();
            EventType {
                index: i,
                ident,
                event_type,
                tenant: match i % 10 {
                    3 => 1,
                    7 => 2,
                    _ => 0,
                },
                fields,
                channels: i % 8 == 5,
                none_as_null: i % 12 == 11,
            }
        })
        .collect()
}

fn upper(word: &str) -> String {
    word.to_ascii_uppercase()
}

fn struct_def(out: &mut String, ty: &EventType, with_event: bool) {
    let derives = if with_event {
        "Debug, Clone, serde::Serialize, serde::Deserialize, Event"
    } else {
        "Debug, Clone, serde::Serialize, serde::Deserialize"
    };
    writeln!(out, "#[derive({derives})]").unwrap();
    writeln!(out, "#[serde(rename_all = \"camelCase\")]").unwrap();
    if with_event {
        writeln!(out, "#[event(name = \"{}\")]", ty.event_type).unwrap();
        if ty.channels {
            writeln!(
                out,
                "#[event(channels(\"global\", \"internal-notifications\"))]"
            )
            .unwrap();
        }
        if ty.none_as_null {
            writeln!(out, "#[event(none_as_null)]").unwrap();
        }
    }
    writeln!(out, "pub struct {} {{", ty.ident).unwrap();
    match ty.tenant {
        0 => writeln!(out, "    pub tenant_id: uuid::Uuid,").unwrap(),
        1 => writeln!(out, "    pub tenant_id: String,").unwrap(),
        _ => {
            if with_event {
                writeln!(out, "    #[event(tenant(any_string))]").unwrap();
            }
            writeln!(out, "    pub tenant_id: String,").unwrap();
        }
    }
    writeln!(out, "    pub entity_id: uuid::Uuid,").unwrap();
    for field in &ty.fields {
        if with_event && !field.rules.is_empty() {
            writeln!(out, "    #[event(validate({}))]", field.rules).unwrap();
        }
        writeln!(out, "    pub {}: {},", field.name, field.ty).unwrap();
    }
    writeln!(out, "}}\n").unwrap();
}

const LINE_ITEM: &str = r#"
/// A nested value, shared by many event types.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: f64,
    pub discount: Option<f64>,
}
"#;

/// What both handler crates share: the audit log and the projections' store.
const HANDLER_SUPPORT: &str = r#"/// The audit log the first subscriber of every type writes to.
pub async fn audit(tenant: uuid::Uuid, id: uuid::Uuid, event_type: &'static str) {
    let _ = (tenant, id, event_type);
}

/// Shared state of the projections.
#[derive(Debug, Default)]
pub struct Store {
    pub written: std::sync::atomic::AtomicU64,
}

impl Store {
    pub async fn record(&self, tenant: uuid::Uuid, entity: uuid::Uuid) -> Result<(), std::io::Error> {
        let _ = (tenant, entity);
        self.written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

"#;

fn generate(repo: &Path, checkout: &Path, app: &Path, n: usize) {
    let types = event_types(n);
    let core = checkout.join("event-bus-core");
    let workspace = format!(
        r#"# Generated by benches/macro-cost: do not edit.
[workspace]
resolver = "2"
members = ["baseline", "plain", "events", "handlers"]

[workspace.dependencies]
event-bus-core = {{ path = {core:?} }}
serde = {{ version = "1.0", features = ["derive"] }}
serde_json = {{ version = "1.0", features = ["raw_value", "preserve_order"] }}
uuid = {{ version = "1.10", features = ["v4", "v5", "fast-rng", "serde"] }}

[profile.release]
debug = 1
"#
    );
    write(app, "Cargo.toml", &workspace);
    // The project's versions of every dependency.
    if !app.join("Cargo.lock").exists() {
        fs::copy(repo.join("Cargo.lock"), app.join("Cargo.lock")).expect("Cargo.lock is copied");
    }

    let manifest = |name: &str, deps: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{deps}"
        )
    };
    let serde_deps = "serde.workspace = true\nserde_json.workspace = true\nuuid.workspace = true\n";

    // baseline
    let mut src =
        String::from("//! Generated: the event structs with serde only.\n#![allow(dead_code)]\n");
    src.push_str(LINE_ITEM);
    for ty in &types {
        struct_def(&mut src, ty, false);
        writeln!(
            src,
            "pub fn roundtrip_{i}(bytes: &[u8]) -> Result<Vec<u8>, serde_json::Error> {{\n    \
             let value: {ident} = serde_json::from_slice(bytes)?;\n    serde_json::to_vec(&value)\n}}\n",
            i = ty.index,
            ident = ty.ident
        )
        .unwrap();
    }
    write(
        app,
        "baseline/Cargo.toml",
        &manifest("baseline", serde_deps),
    );
    write(app, "baseline/src/lib.rs", &src);

    // events
    let mut src = String::from(
        "//! Generated: the event types.\n#![allow(dead_code)]\nuse event_bus_core::Event;\n",
    );
    src.push_str(LINE_ITEM);
    src.push_str(
        r#"
pub mod checks {
    pub fn email(value: &String) -> Result<(), &'static str> {
        if value.contains('@') { Ok(()) } else { Err("must be an email address") }
    }
}

"#,
    );
    for ty in &types {
        struct_def(&mut src, ty, true);
    }
    write(
        app,
        "events/Cargo.toml",
        &manifest(
            "events",
            &format!("event-bus-core.workspace = true\n{serde_deps}"),
        ),
    );
    write(app, "events/src/lib.rs", &src);

    // plain: the handlers' own code, without the framework, as an application runs it: each
    // handler owns the decoded struct (as a subscriber owns its envelope), and its future is
    // boxed as a `Send` future, what any multi-threaded executor needs (`tokio::spawn` needs
    // more). Without the boxing, the futures' drop glue and `Send` checks, which the
    // application cannot do without, would be counted against the framework alone.
    let mut src = String::from(
        "//! Generated: the handlers' own code without the framework (two per event type), each\n\
         //! handler's future boxed so that it can be run.\n\
         #![allow(dead_code)]\nuse baseline::*;\nuse std::sync::Arc;\n\n",
    );
    src.push_str(HANDLER_SUPPORT);
    src.push_str(
        "/// A handler's future, ready for an executor.\n\
         pub type HandlerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), std::io::Error>> + Send>>;\n\n",
    );
    for ty in &types {
        let (i, ident, name) = (ty.index, &ty.ident, &ty.event_type);
        writeln!(
            src,
            r#"pub async fn audit_{i}(tenant: uuid::Uuid, id: uuid::Uuid, event: {ident}) -> Result<(), std::io::Error> {{
    let _ = event;
    audit(tenant, id, "{name}").await;
    Ok(())
}}

pub async fn project_{i}(tenant: uuid::Uuid, event: {ident}, store: Arc<Store>) -> Result<(), std::io::Error> {{
    store.record(tenant, event.entity_id).await
}}

pub fn run_audit_{i}(tenant: uuid::Uuid, id: uuid::Uuid, event: {ident}) -> HandlerFuture {{
    Box::pin(audit_{i}(tenant, id, event))
}}

pub fn run_project_{i}(tenant: uuid::Uuid, event: {ident}, store: Arc<Store>) -> HandlerFuture {{
    Box::pin(project_{i}(tenant, event, store))
}}
"#
        )
        .unwrap();
    }
    write(
        app,
        "plain/Cargo.toml",
        &manifest(
            "plain",
            "baseline = { path = \"../baseline\" }\nuuid.workspace = true\n",
        ),
    );
    write(app, "plain/src/lib.rs", &src);

    // handlers
    let mut src = String::from(
        r#"//! Generated: two subscribers per event type (an audit log, and a projection).
#![allow(dead_code)]
use event_bus_core::{subscriber, Context, Envelope, HandlerError, State};
use events::*;

"#,
    );
    src.push_str(HANDLER_SUPPORT);
    for ty in &types {
        let (i, ident, name) = (ty.index, &ty.ident, &ty.event_type);
        writeln!(
            src,
            r#"#[subscriber("{name}", name = "audit-{i}")]
pub async fn audit_{i}(event: Envelope<{ident}>, ctx: Context) -> Result<(), HandlerError> {{
    audit(ctx.tenant_id(), event.id, "{name}").await;
    Ok(())
}}
"#
        )
        .unwrap();
        if i % 3 == 0 {
            writeln!(
                src,
                r#"#[subscriber("{name}", concurrency = 4, ordering = "tenant")]
pub async fn project_{i}(event: Envelope<{ident}>, ctx: Context, store: State<Store>) -> Result<(), std::io::Error> {{
    store.record(ctx.tenant_id(), event.payload.entity_id).await
}}
"#
            )
            .unwrap();
        } else {
            writeln!(
                src,
                r#"#[subscriber("{name}", max_attempts = 3)]
pub async fn project_{i}(event: Envelope<{ident}>, ctx: Context) -> Result<(), HandlerError> {{
    let store = ctx.state::<Store>()?;
    store.record(ctx.tenant_id(), event.payload.entity_id).await?;
    Ok(())
}}
"#
            )
            .unwrap();
        }
    }
    write(
        app,
        "handlers/Cargo.toml",
        &manifest(
            "handlers",
            "event-bus-core.workspace = true\nevents = { path = \"../events\" }\nuuid.workspace = true\n",
        ),
    );
    write(app, "handlers/src/lib.rs", &src);
}

/// Writes a file, leaving it untouched (and its mtime) when it already holds `contents`.
fn write(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    if fs::read_to_string(&path).is_ok_and(|old| old == contents) {
        return;
    }
    fs::create_dir_all(path.parent().expect("a parent")).expect("the directory is created");
    fs::write(&path, contents).expect("the file is written");
}
