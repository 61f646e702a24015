//! The desk in a browser (`web/`), end to end: `npm ci`, the desk's type check against
//! `schemas/schema.graphql` (`npm run check`), the generator's and the views' component tests (`npm test`), then `web/tests/desk.e2e.mjs` drives Chromium
//! (a customer, an agent and a supervisor in their own browser contexts) against a real
//! `kefu serve` serving the desk this binary embeds. Screenshots of each screen are left in
//! `<target>/desk-screenshots`. Without node or Chromium it prints `skipped` and passes,
//! except under `CI=true`, where it fails naming what is missing.

mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use server::{SECRET, Server};

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

fn chromium() -> PathBuf {
    std::env::var_os("KEFU_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the browser test, if anything.
fn missing() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node (20 or later) is not on PATH".into());
    }
    let npm = Command::new("npm").arg("--version").output();
    if !npm.is_ok_and(|o| o.status.success()) {
        return Some("npm is not on PATH".into());
    }
    let browser = chromium();
    if !browser.exists() {
        return Some(format!(
            "Chromium is not at {} (apt-get install chromium, or set KEFU_CHROMIUM)",
            browser.display()
        ));
    }
    None
}

fn must(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: cannot run it: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_customer_and_an_agent_chat_in_the_browser() {
    if let Some(what) = missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the desk's browser test cannot run: {what}"
        );
        println!("skipped: {what}");
        return;
    }
    let web = web();
    must(
        "npm ci (in web/)",
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web)
            .output(),
    );
    // The desk's operations and types against the schema this build serves.
    must(
        "npm run check (in web/): the desk against schemas/schema.graphql",
        Command::new("npm")
            .args(["run", "check"])
            .current_dir(&web)
            .output(),
    );

    // The generator's own tests: a schema that breaks the desk fails its build.
    must(
        "npm test (in web/)",
        Command::new("npm").arg("test").current_dir(&web).output(),
    );

    let server = Server::start(None, &[]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("desk-screenshots");
    let out = must(
        "web/tests/desk.e2e.mjs (Chromium against kefu serve)",
        Command::new("node")
            .arg("tests/desk.e2e.mjs")
            .current_dir(&web)
            .env("KEFU_URL", format!("http://{}", server.addr))
            .env("KEFU_BIN", env!("CARGO_BIN_EXE_kefu"))
            .env("KEFU_DATA_DIR", server.data_dir())
            .env("KEFU_TOKEN_SECRET", SECRET)
            .env("KEFU_SCREENSHOTS", &shots)
            .env("KEFU_CHROMIUM", chromium())
            .output(),
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    for screen in [
        "01-sign-in-zh",
        "06-workbench-chat-zh",
        "09-dashboard-zh",
        "12-chat-en",
    ] {
        let png = shots.join(format!("{screen}.png"));
        assert!(png.exists(), "{} was not taken", png.display());
    }
}
