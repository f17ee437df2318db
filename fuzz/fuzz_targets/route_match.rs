//! Any request path against a route map: matching never panics, a one-segment parameter never
//! spans a `/` of the raw path, and only exact literal matches select a literal route.
#![no_main]

use std::sync::OnceLock;

use agentiam_guard::http::RouteMap;
use libfuzzer_sys::fuzz_target;

fn routes() -> &'static RouteMap {
    static ROUTES: OnceLock<RouteMap> = OnceLock::new();
    ROUTES.get_or_init(|| {
        RouteMap::new()
            .route("GET", "/invoices/{id}", "read")
            .and_then(|r| r.route("POST", "/payments", "pay"))
            .and_then(|r| r.route("GET", "/files/{*path}", "file"))
            .and_then(|r| r.route("DELETE", "/a/{x}/b/{y}", "del"))
            .expect("routes")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (method, path) = text.split_once(' ').unwrap_or(("GET", text));
    if let Some((tool, params)) = routes().find(method, path) {
        match tool {
            "pay" => assert_eq!(path, "/payments"),
            "read" | "del" => {
                assert_eq!(path.split('/').count(), if tool == "read" { 3 } else { 5 });
                assert!(params.iter().all(|(_, v)| !v.is_empty()));
            }
            "file" => assert!(path.starts_with("/files/")),
            other => panic!("unknown tool {other}"),
        }
    }
});
