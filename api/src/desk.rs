//! The desk in a browser (`web/`), compiled into the binary from its committed build
//! (`web/dist/`), so `kefu serve` serves it at `/` with no node at run time and nothing
//! loaded from another host. `web/dist/SOURCES` is the hash of the sources it was built
//! from; the test below fails when the sources moved on without a rebuild.

/// The page at `/`.
pub const PAGE: &str = include_str!("../../web/dist/index.html");

/// The built assets by their name under `/assets/`: content type and bytes.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    Some(match name {
        "desk.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/dist/assets/desk.js"),
        ),
        "desk.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../web/dist/assets/desk.css"),
        ),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::path::Path;

    /// What `web/scripts/stamp.mjs` hashes; the rule is written there.
    const ROOTS: [&str; 7] = [
        "index.html",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "vite.config.ts",
        "scripts",
        "src",
    ];
    const SKIP: [&str; 1] = ["src/gen"];

    fn walk(web: &Path, rel: &str, out: &mut Vec<String>) {
        if SKIP.contains(&rel) {
            return;
        }
        let abs = web.join(rel);
        if abs.is_dir() {
            for entry in std::fs::read_dir(&abs).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                walk(web, &format!("{rel}/{name}"), out);
            }
        } else {
            out.push(rel.to_owned());
        }
    }

    #[test]
    fn the_built_desk_is_current() {
        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
        let mut files = Vec::new();
        for root in ROOTS {
            walk(&web, root, &mut files);
        }
        files.sort();
        let mut hash = Sha256::new();
        for f in &files {
            let bytes = std::fs::read(web.join(f)).unwrap();
            hash.update(format!("{f}\n{}\n", bytes.len()));
            hash.update(&bytes);
        }
        let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let stamped = std::fs::read_to_string(web.join("dist/SOURCES")).unwrap();
        assert_eq!(
            stamped.trim(),
            digest,
            "web/dist was built from other sources than web/ holds now; run `npm ci && npm run build` in web/ and commit web/dist"
        );
    }

    /// What a page's `src` and `href` attributes name.
    pub(crate) fn references(page: &str) -> Vec<String> {
        let mut referenced = Vec::new();
        for attr in ["src=\"", "href=\""] {
            for part in page.split(attr).skip(1) {
                referenced.push(part.split('"').next().unwrap_or_default().to_owned());
            }
        }
        referenced
    }

    /// The page loads only the assets above, from this server.
    #[test]
    fn the_page_loads_only_its_own_assets() {
        let referenced = references(PAGE);
        assert!(!referenced.is_empty());
        for url in &referenced {
            let name = url
                .strip_prefix("/assets/")
                .unwrap_or_else(|| panic!("{url} is not served by kefu"));
            assert!(asset(name).is_some(), "{url} is referenced but not served");
        }
        let (_, js) = asset("desk.js").unwrap();
        let js = std::str::from_utf8(js).unwrap();
        assert!(
            !js.contains("//unpkg") && !js.contains("//cdn") && !js.contains("fonts.googleapis"),
            "the desk loads nothing from another host"
        );
    }
}
