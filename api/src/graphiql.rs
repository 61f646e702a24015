//! GraphiQL from the binary itself: the page and the npm packages' builds it loads
//! (`api/assets/graphiql/`, see its README), so nothing is fetched from elsewhere.

/// The page at `/graphiql`: it loads only the assets below, from this server.
pub const PAGE: &str = include_str!("../assets/graphiql/index.html");

/// The assets by the name the page asks for: content type and the gzip'd bytes (served
/// with `Content-Encoding: gzip`).
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match name {
        "graphiql.min.js" => (JS, include_bytes!("../assets/graphiql/graphiql.min.js.gz")),
        "graphiql.min.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../assets/graphiql/graphiql.min.css.gz"),
        ),
        "react.production.min.js" => (
            JS,
            include_bytes!("../assets/graphiql/react.production.min.js.gz"),
        ),
        "react-dom.production.min.js" => (
            JS,
            include_bytes!("../assets/graphiql/react-dom.production.min.js.gz"),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page references nothing but same-origin paths, and each is one of the assets.
    #[test]
    fn the_page_loads_only_its_own_assets() {
        let referenced = crate::desk::tests::references(PAGE);
        assert_eq!(referenced.len(), 4, "{referenced:?}");
        for url in &referenced {
            let name = url
                .strip_prefix("/graphiql/")
                .unwrap_or_else(|| panic!("{url} is not served by kefu"));
            assert!(asset(name).is_some(), "{url} is referenced but not served");
        }
        assert!(!PAGE.contains("//unpkg") && !PAGE.contains("cdn"), "no CDN");
    }

    #[test]
    fn assets_are_gzip() {
        for name in [
            "graphiql.min.js",
            "graphiql.min.css",
            "react.production.min.js",
            "react-dom.production.min.js",
        ] {
            let (_, body) = asset(name).unwrap();
            assert_eq!(&body[..2], &[0x1f, 0x8b], "{name} is gzip'd");
        }
    }
}
