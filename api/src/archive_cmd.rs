//! `kefu archive …`: what the archive holds, and whether it is sound.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Subcommand;
use kefu_eventlog::archive::{self, ArchiveStore};

use crate::config::StoreArgs;

#[derive(Subcommand)]
pub enum ArchiveCommand {
    /// One JSON line per archive file: its manifest entry (without the correlation ids) and
    /// whether its move is still pending.
    List,
    /// Check the archive holds every batch the store's registry lists, then read every
    /// archive file back against the manifest (size, SHA-256 of the file and of its content,
    /// events, positions, streams); fails naming the first bad one.
    Verify,
    /// Finish or clean up what an interrupted archiver left (it also runs before every batch).
    Recover,
}

pub async fn run(store: &StoreArgs, cmd: ArchiveCommand) -> Result<()> {
    let log = store.open_existing().await?;
    let archive = log
        .archive()
        .context("this store keeps no archive (KurrentDB keeps its own history)")?
        .clone();
    match cmd {
        ArchiveCommand::List => {
            for (entry, pending) in archive.entries()? {
                let mut line = serde_json::to_value(&*entry)?;
                if let Some(o) = line.as_object_mut() {
                    o.remove("correlations");
                    o.insert("pending".into(), pending.into());
                }
                // Not println!: a reader that stops early (`| head`) must not make it panic.
                writeln!(std::io::stdout().lock(), "{line}")?;
            }
        }
        ArchiveCommand::Verify => {
            let checked = archive::verify_store(&log).await?;
            let events: u64 = checked.iter().map(|e| e.events).sum();
            println!(
                "{} archive files, {events} events, all sound ({})",
                checked.len(),
                archive.dir().display()
            );
        }
        ArchiveCommand::Recover => match archive::recover(&log).await? {
            Some(n) => println!("{n} interrupted batches settled"),
            None => anyhow::bail!("an archiver is working right now; try again later"),
        },
    }
    Ok(())
}
