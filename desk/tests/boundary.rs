//! The command layer's boundary (ARCHITECTURE.md, `desk/`): among kefu's crates it depends on the
//! domain and the log (and the log's one decoder, `kefu-feed`) only, so no read model, search index
//! or model reaches a decision.

#[test]
fn the_desk_depends_on_the_domain_and_the_log_only() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("desk/Cargo.toml");
    let mut section = String::new();
    let mut ours = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_owned();
        } else if section == "[dependencies]" && line.starts_with("kefu-") {
            ours.push(
                line.split(['.', ' ', '='])
                    .next()
                    .unwrap_or(line)
                    .to_owned(),
            );
        }
    }
    ours.sort();
    assert_eq!(
        ours,
        ["kefu-domain", "kefu-eventlog", "kefu-feed"],
        "desk/Cargo.toml [dependencies]"
    );
}
