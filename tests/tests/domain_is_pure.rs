//! Architecture invariant: the domain is pure. `decide` and `evolve` take everything they need
//! as arguments, so a decision replays the same from the log, on any machine, at any time:
//! no clock, no randomness, no I/O, no logging, no global state. Time and ids come in on the
//! command (the shell injects them); a test or a replay that gives the same inputs gets the
//! same events.
//!
//! Two checks hold it: the domain crate depends only on the crates listed below (each pure,
//! with why), and its code (outside its `#[cfg(test)]` modules) uses none of the ways to reach
//! a clock, a random source or the outside world.

use std::fs;

use kefu_tests::source::{relative, rust_files, squeezed_code, workspace};

/// The domain's dependencies, each with why it keeps the domain pure.
const DEPENDENCIES: &[(&str, &str)] = &[
    (
        "chrono",
        "dates and durations as values; reading the clock is forbidden below",
    ),
    ("schemars", "the event JSON schemas, derived at build time"),
    ("serde", "events and commands (de)serialise"),
    ("serde_json", "payload values"),
    ("thiserror", "DomainError"),
    (
        "uuid",
        "ids as values; minting one is forbidden below (the shell mints)",
    ),
];

/// How code reaches a clock, randomness, I/O or global mutable state, whitespace removed as
/// `squeezed_code` removes it.
const FORBIDDEN: &[(&str, &str)] = &[
    ("Utc::now(", "the clock"),
    ("Local::now(", "the clock"),
    ("SystemTime", "the clock"),
    ("Instant::now(", "the clock"),
    ("now_v7(", "an id minted from the clock"),
    ("new_v4(", "a random id"),
    ("rand::", "randomness"),
    ("thread_rng", "randomness"),
    ("getrandom", "randomness"),
    ("std::fs", "the file system"),
    ("File::", "the file system"),
    ("OpenOptions", "the file system"),
    ("std::net", "the network"),
    ("std::env", "the environment"),
    ("std::process", "other processes"),
    ("std::thread", "threads"),
    ("std::io::std", "the terminal"),
    ("tokio", "the runtime"),
    ("tracing::", "logging"),
    ("println!(", "the terminal"),
    ("eprintln!(", "the terminal"),
    ("print!(", "the terminal"),
    ("dbg!(", "the terminal"),
    ("staticmut", "global mutable state"),
    ("thread_local!", "global mutable state"),
];

/// The forbidden things `text` (a domain source file) does, outside its tests.
fn impurities(text: &str) -> Vec<String> {
    let code = squeezed_code(text);
    FORBIDDEN
        .iter()
        .filter(|(pattern, _)| code.contains(pattern))
        .map(|(pattern, what)| format!("{pattern} ({what})"))
        .collect()
}

/// The names in the `[dependencies]` table of a Cargo.toml.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                out.push(name.split('.').next().unwrap_or(name).to_owned());
            }
        }
    }
    out
}

#[test]
fn the_domain_depends_only_on_pure_crates() {
    let manifest =
        fs::read_to_string(workspace().join("domain/Cargo.toml")).expect("domain/Cargo.toml");
    let found = dependencies(&manifest);
    assert!(
        !found.is_empty(),
        "no [dependencies] read from domain/Cargo.toml"
    );
    let unknown: Vec<&String> = found
        .iter()
        .filter(|d| !DEPENDENCIES.iter().any(|(name, _)| name == d))
        .collect();
    assert!(
        unknown.is_empty(),
        "domain/Cargo.toml depends on {unknown:?}: the domain must stay pure (no clock, \
         randomness or I/O); if the crate is pure, add it to DEPENDENCIES with why"
    );
}

#[test]
fn the_domain_reads_no_clock_draws_no_random_number_and_does_no_io() {
    let files = rust_files(&workspace().join("domain/src"));
    assert!(files.len() > 5, "found only {} domain files", files.len());
    let offenders: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let text =
                fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let found = impurities(&text);
            (!found.is_empty()).then(|| format!("{}: {}", relative(path), found.join(", ")))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "the domain must be pure; take the time or id as an argument (the shell injects \
         them) and do I/O at the edges:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_forbid_and_pass_over_tests() {
    for code in [
        "let at = chrono::Utc::now();",
        "let id = Uuid::now_v7();",
        "let at = Utc\n    ::now();",
        "std::fs::read_to_string(p)",
        "tracing::info!(\"decided\")",
        "static mut COUNT: u32 = 0;",
    ] {
        assert!(!impurities(code).is_empty(), "missed {code:?}");
    }
    assert!(
        impurities("fn f(now: DateTime<Utc>) {}\n#[cfg(test)]\nmod tests { Utc::now(); }")
            .is_empty()
    );
    assert_eq!(
        dependencies(
            "[package]\nname = \"x\"\n[dependencies]\nchrono.workspace = true\nserde = { version = \"1\" }\n# a note\n[dev-dependencies]\nproptest = \"1\"\n"
        ),
        ["chrono", "serde"]
    );
}
