//! The OpenAPI document: every API route of the router is in it (read from
//! src/http/mod.rs, so a route added there without a line in `openapi::ROUTES` fails
//! here), and the binary serves it without a key. tests/otel/test_openapi.py validates it
//! with openapi-spec-validator.

mod common;
use burnrate::openapi::ROUTES;
use common::*;
use std::collections::BTreeSet;

/// (method, path) of every `.route(...)` in the router's source.
fn router_routes() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).unwrap();
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join("");
    let mut routes = BTreeSet::new();
    for chunk in flat.split(".route(\"").skip(1) {
        let (path, rest) = chunk.split_once('"').unwrap();
        // The method routers up to the end of this route call.
        let call = rest.split(".route(").next().unwrap();
        let call = call.split(".merge(").next().unwrap();
        for method in ["get", "post", "put", "delete"] {
            let first = call.starts_with(&format!(",{method}("));
            if first || call.contains(&format!(").{method}(")) {
                routes.insert((method.to_string(), path.to_string()));
            }
        }
    }
    routes
}

#[test]
fn every_route_of_the_router_is_in_the_document_and_no_other() {
    let router = router_routes();
    assert!(router.len() > 30, "{router:?}");
    let documented: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = router.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&router).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes without an OpenAPI operation: {missing:?}; operations without a route: {extra:?}"
    );
}

#[tokio::test]
async fn the_document_is_served_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("b.db"), &[]);
    let resp = reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["paths"]["/v1/traces"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/IngestReply"
    );
}
