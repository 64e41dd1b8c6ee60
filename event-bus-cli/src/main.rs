//! `event-bus`: operate an event-bus deployment from its Redis alone (no events crate linked).
//!
//! - `status`: streams, consumer groups (lag, pending, consumers and their idle time), dead
//!   letters, queued replays, orphaned groups;
//! - `dead-letters list | show | replay | purge`, by stream, subscriber or id; a replay is a
//!   durable request that the failing subscriber's running consumers carry out;
//! - `tail`: follow a stream.
//!
//! Tables by default, `--json` for scripts. See `event-bus --help`.

mod cli;
mod conn;
mod dead_letters;
mod discover;
mod error;
mod status;
mod table;
mod tail;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, DeadLetterCommand};
use conn::Redacted;
use error::Result;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let url = cli
        .url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| conn::DEFAULT_URL.to_owned());
    let redacted = Redacted::new(&url);
    let (client, mut conn) = conn::connect(&url, conn::command_timeout()).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let prefix = cli.prefix.as_str();
    match cli.command {
        Command::Status(args) => {
            let status = status::gather(&mut conn, &redacted, prefix, args.orphan_after).await?;
            if cli.json {
                serde_json::to_writer_pretty(&mut out, &status).map_err(std::io::Error::other)?;
                writeln!(out)?;
            } else {
                status::print(&status, args.orphan_after, &mut out)?;
            }
        }
        Command::DeadLetters(command) => match command {
            DeadLetterCommand::List { filter } => {
                dead_letters::list(&mut conn, &redacted, prefix, &filter, cli.json, &mut out)
                    .await?;
            }
            DeadLetterCommand::Show { id, stream } => {
                dead_letters::show(
                    &mut conn,
                    &redacted,
                    prefix,
                    &id,
                    stream.as_deref(),
                    cli.json,
                    &mut out,
                )
                .await?;
            }
            DeadLetterCommand::Replay {
                filter,
                all,
                yes,
                wait,
                timeout,
            } => {
                let options = dead_letters::ReplayOptions {
                    all,
                    yes,
                    wait,
                    timeout,
                };
                dead_letters::replay(
                    &mut conn, &redacted, prefix, &filter, options, cli.json, &mut out,
                )
                .await?;
            }
            DeadLetterCommand::Purge { filter, all, yes } => {
                let scope = dead_letters::Scope { all, yes };
                dead_letters::purge(
                    &mut conn, &redacted, prefix, &filter, scope, cli.json, &mut out,
                )
                .await?;
            }
        },
        Command::Tail(args) => {
            tail::tail(
                &client,
                &mut conn,
                &redacted,
                prefix,
                &args.stream,
                &args.from,
                args.count,
                cli.json,
                &mut out,
            )
            .await?;
        }
    }
    out.flush()?;
    Ok(())
}
