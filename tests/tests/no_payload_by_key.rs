//! Architecture invariant: no payload is read by key outside the decoder (`kefu-feed`). Code
//! that follows the log matches on `kefu_domain::Event`; a field read from the JSON by name
//! is a second, untyped decoder that upcasting and schema changes do not reach.
//!
//! The check scans every `.rs` file of the workspace for the ways a payload is read by key,
//! whitespace removed so that a chain split over lines is seen too. Tests may read payloads
//! (they check what was stored): integration tests under a crate's `tests/` and the
//! `#[cfg(test)]` module at the end of a source file are not scanned.

use std::fs;

use kefu_tests::source::{relative, rust_files, squeezed_code, workspace};

/// How a payload is read by key.
const PATTERNS: &[&str] = &[
    ".payload[",
    ".payload.get(",
    ".payload.get_mut(",
    ".payload.pointer(",
    ".payload.as_",
    "payload.as_object",
    "payload[\"",
    "payload.get(\"",
];

/// Files whose job is raw JSON, each with why. Every entry must still match a pattern, so the
/// list cannot outlive its reason.
const ALLOWED: &[(&str, &str)] = &[(
    "feed/src/lib.rs",
    "the decoder itself: reads an event's business time even when it cannot be typed",
)];

/// The patterns `file` reads payloads by, outside its tests.
fn reads_by_key(file: &str, text: &str) -> Vec<&'static str> {
    // An integration test directory: `<crate>/tests/…`.
    if file.split('/').nth(1) == Some("tests") {
        return vec![];
    }
    let squeezed = squeezed_code(text);
    PATTERNS
        .iter()
        .copied()
        .filter(|p| squeezed.contains(p))
        .collect()
}

#[test]
fn no_payload_is_read_by_key_outside_the_decoder() {
    let files = rust_files(&workspace());
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut offenders = Vec::new();
    let mut allowed_seen = Vec::new();
    for path in files {
        let file = relative(&path);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let hits = reads_by_key(&file, &text);
        if hits.is_empty() {
            continue;
        }
        if ALLOWED.iter().any(|(allowed, _)| *allowed == file) {
            allowed_seen.push(file);
        } else {
            offenders.push(format!("{file}: {hits:?}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "payloads read by key outside the decoder; match on kefu_domain::Event from \
         kefu_feed instead:\n{}",
        offenders.join("\n")
    );
    for (allowed, why) in ALLOWED {
        assert!(
            allowed_seen.iter().any(|f| f == allowed),
            "{allowed} is allowed to read payloads by key ({why}) but no longer does: drop it \
             from the list"
        );
    }
}

#[test]
fn the_scan_sees_the_reads_it_forbids_and_passes_over_tests() {
    // What the workers and subscriptions did before the decoder, verbatim.
    for code in [
        "e.payload[\"message\"]\n    .as_str()",
        "e.payload.get(\"queue\").and_then(|q| q.as_str())",
        "decisive\n            .payload\n            .get(*field)",
        "let at = payload\n    .as_object_mut()",
    ] {
        assert!(
            !reads_by_key("workers/src/x.rs", code).is_empty(),
            "missed {code:?}"
        );
    }
    assert!(
        reads_by_key(
            "api/src/x.rs",
            "fn f() {}\n#[cfg(test)]\nmod tests { e.payload[\"a\"]; }"
        )
        .is_empty()
    );
    assert!(reads_by_key("api/tests/x.rs", "e.payload[\"a\"]").is_empty());
    // A WebSocket handshake's payload is no event's, but read with a literal key it would be
    // flagged: only `payload.get(key)` with a variable key passes.
    assert!(reads_by_key("api/src/serve.rs", "payload.get(*k)").is_empty());
}
