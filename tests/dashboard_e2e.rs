//! The dashboard against the real binary: login and sessions, and every page with known
//! numbers from the fixed data set in tests/browser/fixture (see make.mjs there).

mod common;

use common::{cli, key, within_key_bound, Api, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const WINDOW: &str = "from=2026-01-10T00:00:00Z&to=2026-01-12T00:00:00Z";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/fixture")
        .join(name)
}

struct Setup {
    _dir: tempfile::TempDir,
    db: PathBuf,
    server: Server,
    read: String,
    admin: String,
    ingest: String,
    http: reqwest::Client,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    cli(
        &db,
        &[
            "prices",
            "import",
            fixture("overrides.json").to_str().unwrap(),
        ],
    );
    cli(&db, &["import", fixture("events.jsonl").to_str().unwrap()]);
    let read = key(&db, "default", "read");
    let admin = key(&db, "default", "admin");
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &[]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Setup {
        _dir: dir,
        db,
        server,
        read,
        admin,
        ingest,
        http,
    }
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let resp = req.send().await.unwrap();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        Page {
            status: resp.status().as_u16(),
            location,
            set_cookie,
            body: resp.text().await.unwrap(),
        }
    }

    async fn login(&self, key: &str) -> Page {
        self.send(
            self.http
                .post(self.url("/login"))
                .form(&[("key", key), ("next", "/endpoints")]),
        )
        .await
    }

    /// Log in and return the `name=value` of the session cookie.
    async fn session(&self, key: &str) -> String {
        let page = self.login(key).await;
        assert_eq!(page.status, 303);
        let cookie = page.set_cookie.expect("a session cookie");
        cookie.split(';').next().unwrap().to_string()
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut req = self.http.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        self.send(req).await
    }
}

#[tokio::test]
async fn login_sets_a_strict_httponly_session_cookie() {
    let s = setup();
    let form = s.get("/login", None).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains(r#"method="post""#));

    let page = s.login(&s.read).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/endpoints"));
    let cookie = page.set_cookie.unwrap();
    assert!(cookie.starts_with("burnrate_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains(&s.read[3..]),
        "the key never goes into the cookie"
    );

    // The session opens pages, and the key appears in none of them.
    let c = cookie.split(';').next().unwrap();
    let overview = s.get(&format!("/?{WINDOW}"), Some(c)).await;
    assert_eq!(overview.status, 200);
    assert!(!overview.body.contains(&s.read));

    // An admin key may log in too; an external next is not followed.
    let admin = s
        .send(
            s.http
                .post(s.url("/login"))
                .form(&[("key", s.admin.as_str()), ("next", "//evil.example/")]),
        )
        .await;
    assert_eq!(admin.status, 303);
    assert_eq!(admin.location.as_deref(), Some("/"));
}

/// `next=/%09/evil.example` passed the old check (it starts with one `/`), and browsers
/// drop the tab and go to //evil.example. Only the dashboard's own pages are followed.
#[tokio::test]
async fn login_next_that_a_browser_reads_as_another_site_goes_home() {
    let s = setup();
    let attacks = [
        "/%09/evil.example",
        "/%0A/evil.example",
        "/%5C/evil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
        "//evil.example",
        "https://evil.example/",
        "/endpoints%3Fx%3D%09%2F%2Fevil",
    ];
    for attack in attacks {
        // Signing in with the form's next.
        let page = s
            .send(
                s.http
                    .post(s.url("/login"))
                    .body(format!("key={}&next={attack}", s.read))
                    .header("content-type", "application/x-www-form-urlencoded"),
            )
            .await;
        assert_eq!(page.status, 303, "{attack}");
        assert_eq!(page.location.as_deref(), Some("/"), "POST next={attack}");
        // Already signed in, the login page redirects at once.
        let cookie = page.set_cookie.unwrap();
        let c = cookie.split(';').next().unwrap();
        let again = s.get(&format!("/login?next={attack}"), Some(c)).await;
        assert_eq!(again.status, 303, "{attack}");
        assert_eq!(again.location.as_deref(), Some("/"), "GET next={attack}");
    }
    // A dashboard page with its query string is still followed.
    let page = s
        .send(
            s.http
                .post(s.url("/login"))
                .body(format!(
                    "key={}&next=%2Ftenants%3Fdim%3DuserId%26range%3D24h",
                    s.read
                ))
                .header("content-type", "application/x-www-form-urlencoded"),
        )
        .await;
    assert_eq!(
        page.location.as_deref(),
        Some("/tenants?dim=userId&range=24h")
    );
}

#[tokio::test]
async fn pages_need_a_session() {
    let s = setup();
    for path in [
        "/",
        "/endpoints",
        "/tenants",
        "/versions",
        "/models",
        "/requests",
        "/budgets",
        "/alerts",
    ] {
        let page = s.get(path, None).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(page.location.unwrap().starts_with("/login"), "{path}");
    }
    let page = s.get("/endpoints?dataMode=demo", None).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=/endpoints%3FdataMode%3Ddemo")
    );
    let forged = s.get("/", Some("burnrate_session=0123456789abcdef")).await;
    assert_eq!(forged.status, 303);
    // A key header does not open the HTML pages: they are for people with a session.
    let with_key = s
        .send(s.http.get(s.url("/")).header("X-API-Key", &s.read))
        .await;
    assert_eq!(with_key.status, 303);
}

#[tokio::test]
async fn ingest_keys_and_bad_keys_cannot_log_in() {
    let s = setup();
    let ingest = s.login(&s.ingest).await;
    assert_eq!(ingest.status, 403);
    assert!(ingest.set_cookie.is_none());
    assert!(ingest.body.contains("ingest key"));
    let cross_site = s
        .send(
            s.http
                .post(s.url("/login"))
                .header("origin", "https://evil.example")
                .form(&[("key", s.read.as_str())]),
        )
        .await;
    assert_eq!(cross_site.status, 403, "no login from another site");
    assert!(cross_site.set_cookie.is_none());
    let bad = s.login("br_not_a_key").await;
    assert_eq!(bad.status, 401);
    assert!(bad.set_cookie.is_none());
    assert!(!bad.body.contains("br_not_a_key"), "the key is not echoed");
}

#[tokio::test]
async fn every_page_shows_the_known_numbers() {
    let s = setup();
    let c = s.session(&s.read).await;
    let c = Some(c.as_str());

    // The spike marker follows the workspace's spend-spike rule: the fixture's spike
    // hours hold 5 or 6 calls, under the rule's default minimum of 20 calls...
    let overview = s.get(&format!("/?{WINDOW}"), c).await;
    assert_eq!(overview.status, 200);
    assert!(!overview.body.contains(r#"id="spike""#), "too few calls");
    // ... and with the minimum lowered to 5 calls, the marker shows the spike.
    let r = Api::new(&s.server)
        .put_json(
            "/v1/alert-rules",
            &s.admin,
            &json!({"rules": {"hourly_spend_spike": {"minRequests": 5}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let overview = s.get(&format!("/?{WINDOW}"), c).await;
    assert_eq!(overview.status, 200);
    let b = &overview.body;
    assert!(b.contains(r#"data-kpi="spend""#));
    assert!(b.contains(r#"data-usd="1.8662">$1.87<"#), "spend");
    assert!(b.contains(r#"data-n="43">43<"#), "requests");
    assert!(b.contains("vs $0.024<"), "previous spend");
    assert!(b.contains("4.7%"), "unpriced ratio 2/43");
    assert!(b.contains("2.3%"), "retry ratio 1/43");
    assert!(
        b.contains(r#"data-spike-from="2026-01-11T14:00:00Z""#),
        "spike"
    );
    assert!(
        b.contains(r#"data-spike-to="2026-01-11T17:00:00Z""#),
        "spike"
    );
    assert!(
        b.contains("/endpoints?from=2026-01-11T14:00:00Z&amp;to=2026-01-11T17:00:00Z"),
        "endpoints in the spike"
    );
    assert!(
        b.contains("/explain?from=2026-01-11T14:00:00Z&amp;to=2026-01-11T17:00:00Z"),
        "explain the spike"
    );
    assert!(
        b.contains(r#"href="/explain?from=2026-01-10T00:00:00Z&amp;to=2026-01-12T00:00:00Z""#),
        "explain the window"
    );
    assert!(b.contains("<svg class=\"chart\""));
    assert!(b.contains("Budget posture"));
    assert!(b.contains("data-freshness"), "freshness line");

    let endpoints = s.get(&format!("/endpoints?{WINDOW}"), c).await;
    assert_eq!(endpoints.status, 200);
    let b = &endpoints.body;
    assert!(b.contains(r#"data-total-usd="1.8662""#));
    for (tag, usd) in [
        ("summarize.doc", "1.8"),
        ("support.reply", "0.0642"),
        ("chat.assist", "0.002"),
    ] {
        let row = &b[b.find(&format!(r#"<tr data-key="{tag}">"#)).expect(tag)..];
        assert!(row.contains(&format!(r#"data-usd="{usd}""#)), "{tag}");
    }
    assert!(b.contains("/tenants?from=2026-01-10T00:00:00Z&amp;to=2026-01-12T00:00:00Z&amp;endpointTag=summarize.doc"));

    // The explained window: only the spike's three hours, against the three before.
    let spike = s
        .get(
            "/endpoints?from=2026-01-11T14:00:00Z&to=2026-01-11T17:00:00Z",
            c,
        )
        .await;
    assert!(spike.body.contains(r#"data-total-usd="1.8067""#));

    let tenants = s
        .get(&format!("/tenants?{WINDOW}&endpointTag=support.reply"), c)
        .await;
    assert_eq!(tenants.status, 200);
    let b = &tenants.body;
    assert!(b.contains(r#"<tr data-key="t-alpha">"#) && b.contains(r#"<tr data-key="t-beta">"#));
    assert!(
        !b.contains(r#"<tr data-key="t-gamma">"#),
        "filtered by endpoint"
    );
    assert!(b.contains(r#"data-total-usd="0.0642""#));
    assert!(b.contains(r#"data-conc="top1""#) && b.contains("50.0%"));
    assert!(b.contains("/versions?from=2026-01-10T00:00:00Z&amp;to=2026-01-12T00:00:00Z&amp;endpointTag=support.reply"));
    let users = s.get(&format!("/tenants?{WINDOW}&dim=userId"), c).await;
    assert!(users.body.contains(r#"<tr data-key="u3">"#));

    let versions = s.get(&format!("/versions?{WINDOW}"), c).await;
    assert_eq!(versions.status, 200);
    let b = &versions.body;
    let row = &b[b.find(r#"data-endpoint="support.reply""#).unwrap()..];
    assert!(row.contains("sr_v2") && row.contains("sr_v1"));
    assert!(row.contains("regression"));
    assert!(
        row.contains(r#"data-usd="0.00335""#),
        "current cost per request"
    );
    assert!(
        row.contains(r#"data-usd="0.001846153""#),
        "baseline: $0.024 / 13"
    );
    assert!(row.contains("+81.5%"));
    assert!(
        b.find(r#"data-endpoint="support.reply""#) < b.find(r#"data-endpoint="summarize.doc""#),
        "regressions first"
    );

    let models = s.get(&format!("/models?{WINDOW}"), c).await;
    assert_eq!(models.status, 200);
    let b = &models.body;
    assert!(b.contains(r#"data-unpriced="selfhosted/mystery-9b""#));
    assert!(b.contains("burnrate prices check"));
    let row = &b[b.find(r#"<tr data-key="acme/m2">"#).unwrap()..];
    assert!(row.contains(r#"data-usd="1.8""#));

    let requests = s
        .get(&format!("/requests?{WINDOW}&endpointTag=summarize.doc"), c)
        .await;
    assert_eq!(requests.status, 200);
    assert_eq!(
        requests.body.matches("<details class=\"req\"").count(),
        15,
        "filters apply"
    );
    let one = s.get("/requests?q=sr-20", c).await;
    let b = &one.body;
    assert_eq!(b.matches("<details class=\"req\"").count(), 1);
    assert!(b.contains(r#"data-price-entry="fixture-1:acme/m1""#));
    assert!(b.contains(r#"data-breakdown-total="0.00335""#));
    for part in ["0.0015", "0.00025", "0.0016"] {
        assert!(b.contains(&format!(r#"data-usd="{part}""#)), "{part}");
    }
    let unpriced = s.get("/requests?q=unpriced-0", c).await;
    assert!(unpriced.body.contains("unpriced"));

    // Paging: 55 real prod calls over four days, 50 a page.
    let first = s
        .get(
            "/requests?from=2026-01-08T00:00:00Z&to=2026-01-12T00:00:00Z",
            c,
        )
        .await;
    assert_eq!(first.body.matches("<details class=\"req\"").count(), 50);
    let b = &first.body;
    let link = &b[b.find(r#"id="next-page""#).expect("a next page")..];
    let link = &link[link.find("href=\"").unwrap() + 6..];
    let next = link[..link.find('"').unwrap()].replace("&amp;", "&");
    let second = s.get(&next, c).await;
    assert_eq!(second.body.matches("<details class=\"req\"").count(), 5);
    assert!(!second.body.contains("next-page"));

    // Times typed in the filter bar become RFC 3339 in the URL, as the API takes them.
    let typed = s
        .get("/models?from=2026-01-10%2000:00&dataMode=demo", c)
        .await;
    assert_eq!(typed.status, 303);
    assert_eq!(
        typed.location.as_deref(),
        Some("/models?from=2026-01-10T00:00:00Z&dataMode=demo")
    );

    // Bad parameters are explained, not ignored.
    let bad = s.get("/endpoints?colour=red", c).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("colour"));
}

#[tokio::test]
async fn the_json_api_takes_the_session_cookie_for_reads_only() {
    let s = setup();
    let c = s.session(&s.read).await;
    let top = s
        .get(&format!("/v1/top/endpoints?{WINDOW}"), Some(&c))
        .await;
    assert_eq!(top.status, 200);
    let body: serde_json::Value = serde_json::from_str(&top.body).unwrap();
    assert_eq!(body["total"]["costUsd"], serde_json::json!(1.8662));
    let admin = s.session(&s.admin).await;
    let ingest = s
        .send(
            s.http
                .post(s.url("/v1/ingest/llm-request"))
                .header("cookie", &admin)
                .json(&common::event("via-cookie")),
        )
        .await;
    assert_eq!(ingest.status, 401, "ingest needs a key, never a cookie");
}

#[tokio::test]
async fn a_revoked_key_ends_its_sessions_within_the_key_bound() {
    let s = setup();
    let c = s.session(&s.read).await;
    assert_eq!(s.get("/models", Some(&c)).await.status, 200);
    let prefix: String = s.read.chars().take(11).collect();
    cli(&s.db, &["keys", "revoke", &prefix]);
    // The server's key table sees the CLI's revocation within its bound (250 ms checks).
    within_key_bound("the revoked key's session refused", || async {
        s.get("/models", Some(&c)).await.status != 200
    })
    .await;
    let page = s.get("/models", Some(&c)).await;
    assert_eq!(page.status, 303);
    assert!(page.location.unwrap().starts_with("/login"));
    let api = s.get("/v1/top/endpoints", Some(&c)).await;
    assert_eq!(api.status, 401);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let s = setup();
    let c = s.session(&s.read).await;
    assert_eq!(s.get("/", Some(&c)).await.status, 200);
    let out = s
        .send(s.http.post(s.url("/logout")).header("cookie", &c))
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/login"));
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    let after = s.get("/", Some(&c)).await;
    assert_eq!(
        after.status, 303,
        "the old cookie is dead on the server too"
    );
}

#[tokio::test]
async fn the_explain_page_shows_the_api_numbers() {
    let s = setup();
    let c = s.session(&s.read).await;
    let page = s.get(&format!("/explain?{WINDOW}"), Some(&c)).await;
    assert_eq!(page.status, 200);
    let b = &page.body;
    // $1.8662 now against $0.024 in the two days before.
    assert!(b.contains(r#"data-change-usd="1.8422""#), "total change");
    assert!(b.contains("Spend rose from $0.024 to $1.87"), "summary");
    // The spike's endpoint is new in this window: the first driver.
    let drivers = &b[b.find(r#"id="drivers""#).expect("drivers table")..];
    assert!(
        drivers.contains(
            r#"data-kind="new_group" data-dimension="endpointTag" data-value="summarize.doc""#
        ),
        "first driver"
    );
    assert!(b.contains(r#"id="dim-tenantId""#) && b.contains(r#"id="endpoint-summarize.doc""#));
    assert!(
        b.contains(
            r#"href="/explain?from=2026-01-10T00:00:00Z&amp;to=2026-01-12T00:00:00Z" class="on""#
        ) || b.contains(r#"class="on" href="/explain"#),
        "in the nav"
    );
    let bad = s
        .get(&format!("/explain?{WINDOW}&by=colour"), Some(&c))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("by unknown dimension"));
}

/// Calls stamped now (budgets count the current period, alert rules the last hours):
/// `cost` is reported by the client, so spend is exact; None leaves the unknown model
/// unpriced.
fn now_calls(tag: &str, n: usize, model: &str, tenant: &str, cost: Option<f64>) -> Vec<Value> {
    let now = jiff::Timestamp::now().as_millisecond();
    (0..n)
        .map(|i| {
            let mut e = json!({
                "externalRequestId": format!("{tag}-{i}"), "provider": "selfhosted",
                "model": model, "endpointTag": format!("{tag}.endpoint"), "tenantId": tenant,
                "inputTokens": 100, "outputTokens": 10, "status": "success",
                "timestamp": jiff::Timestamp::from_millisecond(now - 1000 * i as i64).unwrap().to_string(),
            });
            if let Some(c) = cost {
                e["costUsd"] = json!(c);
            }
            e
        })
        .collect()
}

/// A webhook receiver that answers 200 to anything.
async fn receiver() -> String {
    let app = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The text of the element that opens with `start` (up to the next `end`).
fn section<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in the page"));
    let rest = &body[from..];
    &rest[..rest[start.len()..]
        .find(end)
        .map_or(rest.len(), |i| i + start.len())]
}

#[tokio::test]
async fn budgets_posture_and_alerts_show_the_api_numbers() {
    let s = setup();
    let api = Api::new(&s.server);
    let c = s.session(&s.read).await;
    let c = Some(c.as_str());

    // Before any budget: the Budgets page says how to make one, the Overview hints.
    let page = s.get("/budgets", c).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-empty"));
    assert!(page.body.contains("/v1/budgets") && page.body.contains("burnrate budgets create"));
    let r = api
        .post(
            "/v1/ingest/batch",
            &s.ingest,
            &json!(now_calls("spend", 3, "race-model", "t-now", Some(0.25))),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["rejected"], json!([]), "{}", r.body);
    let overview = s.get("/", c).await;
    let posture = section(&overview.body, r#"id="budget""#, "</div></div>");
    assert!(posture.contains("No budgets yet"), "{posture}");

    // $0.75 of a $1 monthly budget for t-now: warning (50% reached, 80% not yet).
    let mut ids = Vec::new();
    for body in [
        json!({"name": "t-now monthly", "scope": {"tenantId": "t-now"}, "period": "month",
               "limitUsd": 1, "thresholds": [50, 80], "action": "block"}),
        json!({"name": "spend endpoint daily", "scope": {"endpointTag": "spend.endpoint"},
               "period": "day", "timezone": "Europe/Berlin", "limitUsd": 100}),
    ] {
        let r = api.post("/v1/budgets", &s.admin, &body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_i64().unwrap());
    }
    let status = api
        .get(&format!("/v1/budgets/{}/status", ids[0]), &s.read)
        .await
        .body;
    assert_eq!(status["spentUsd"], json!(0.75));
    assert_eq!(status["state"], "warning");

    let page = s.get("/budgets", c).await;
    assert_eq!(page.status, 200);
    let b = &page.body;
    assert!(
        b.contains(r#"class="on" href="/budgets""#) || b.contains(r#"href="/budgets" class="on""#),
        "in the nav"
    );
    let listed = api.get("/v1/budgets", &s.read).await.body;
    for item in listed["budgets"].as_array().unwrap() {
        let (budget, st) = (&item["budget"], &item["status"]);
        let card = section(
            b,
            &format!(r#"id="budget-{}""#, budget["id"]),
            r#"<div class="card budget""#,
        );
        assert!(card.contains(&format!(
            r#"data-state="{}""#,
            st["state"].as_str().unwrap()
        )));
        // The forecast moves with the clock (a run rate); the amounts do not.
        for field in ["spentUsd", "reservedUsd", "remainingUsd"] {
            let cell = section(card, &format!(r#"data-field="{field}""#), "</tr>");
            assert!(
                cell.contains(&format!(r#"data-usd="{}""#, st[field])),
                "{field}: {cell}"
            );
        }
        assert!(card.contains(&format!(
            r#"data-method="{}""#,
            st["forecastMethod"].as_str().unwrap()
        )));
        let forecast = section(card, r#"data-field="forecastUsd""#, "</tr>");
        let shown = section(forecast, "data-usd=", ">");
        let shown: f64 = shown
            .trim_start_matches("data-usd=")
            .trim_matches('"')
            .parse()
            .unwrap();
        assert!(
            shown >= st["spentUsd"].as_f64().unwrap(),
            "forecast {shown}"
        );
        assert!(card.contains(r#"<svg class="gauge"#) && card.contains(r#"<svg class="burn""#));
    }
    // The worst budget comes first, with its own numbers.
    let first = section(b, r#"id="budget-"#, r#"<div class="card budget""#);
    assert!(first.contains(&format!(r#"id="budget-{}""#, ids[0])));
    assert!(
        first.contains(r#"data-usd="0.75""#) && first.contains(r#"data-usd="0.25""#),
        "spent, remaining"
    );
    assert!(first.contains("75.0%") && first.contains("50% reached"));
    assert!(first.contains("tenant <code>t-now</code>") && first.contains("blocks at the limit"));
    let second = section(b, &format!(r#"id="budget-{}""#, ids[1]), "</table>");
    assert!(
        second.contains("Europe/Berlin") && second.contains("endpoint <code>spend.endpoint</code>")
    );

    // The Overview's posture: one warning, one ok, the worst first with its gauge.
    let overview = s.get("/", c).await;
    let posture = section(&overview.body, r#"id="budget""#, "All budgets");
    let posture = &overview.body[overview.body.find(posture).unwrap()..];
    assert!(
        posture.contains(r#"data-count="warning"><b class="tnum">1</b>"#),
        "{posture}"
    );
    assert!(posture.contains(r#"data-count="ok"><b class="tnum">1</b>"#));
    assert!(posture.contains(r#"data-count="exceeded"><b class="tnum">0</b>"#));
    let worst = section(posture, "posture-row", "</svg>");
    assert!(
        worst.contains(&format!("/budgets#budget-{}", ids[0]))
            && worst.contains(r#"data-usd="0.75""#)
    );

    // Alerts: an unknown model in 25 calls now, evaluated at once, with a channel.
    let hook = receiver().await;
    let r = api
        .post(
            "/v1/channels",
            &s.admin,
            &json!({"name": "ops-hook", "type": "webhook", "url": hook}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .post(
            "/v1/ingest/batch",
            &s.ingest,
            &json!(now_calls("burst", 25, "mystery-now", "t-burst", None)),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = api.post("/v1/alerts/evaluate", &s.admin, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let alerts = api.get("/v1/alerts", &s.read).await.body;
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "unpriced_ratio")
        .expect("the unpriced rule fired")
        .clone();
    let id = alert["id"].as_i64().unwrap();
    assert_eq!(alert["evidence"]["unpricedRequests"], json!(25));
    assert_eq!(alert["drivers"][0]["value"], "mystery-now");

    let page = s.get("/alerts", c).await;
    assert_eq!(page.status, 200);
    let b = &page.body;
    let firing = section(b, r#"id="firing""#, r#"id="history""#);
    let card = section(
        firing,
        &format!(r#"id="alert-{id}""#),
        r#"<div class="card alert""#,
    );
    assert!(card.contains(r#"data-state="firing""#));
    assert!(card.contains(alert["title"].as_str().unwrap()));
    let row = section(card, r#"data-key="unpricedRequests""#, "</tr>");
    assert!(row.contains(">25<"), "{row}");
    let row = section(card, r#"data-key="requests""#, "</tr>");
    assert!(
        row.contains(&format!(">{}<", alert["evidence"]["requests"])),
        "{row}"
    );
    assert!(card.contains(r#"data-dimension="model" data-value="mystery-now""#));
    assert!(card.contains(&format!(
        r#"data-share="{}""#,
        alert["drivers"][0]["sharePct"]
    )));
    let ev = &alert["evidence"];
    let explain = format!(
        "/explain?from={}&amp;to={}&amp;baselineFrom={}&amp;baselineTo={}",
        ev["window"]["from"].as_str().unwrap(),
        ev["window"]["to"].as_str().unwrap(),
        ev["baseline"]["from"].as_str().unwrap(),
        ev["baseline"]["to"].as_str().unwrap()
    );
    assert!(
        card.contains(&format!(r#"href="{explain}">Explain this"#)),
        "{card}"
    );
    let view = alert["link"].as_str().unwrap().replace('&', "&amp;");
    assert!(card.contains(&format!(r#"href="{view}">Open view"#)));
    assert!(card.contains(r#"data-channel="ops-hook" data-delivered="true""#));
    // The explain link opens.
    assert_eq!(s.get(&explain.replace("&amp;", "&"), c).await.status, 200);
    let rules = section(b, r#"id="rules""#, "</table>");
    assert!(
        section(rules, r#"data-rule="unpriced_ratio""#, "</tr>").contains(">1<"),
        "threshold"
    );

    // Muted, the finding goes away: the alert moves to the history, resolved.
    let r = api
        .put_json(
            "/v1/alert-rules",
            &s.admin,
            &json!({"rules": {"unpriced_ratio": {"mutedUntil": "2099-01-01T00:00:00Z"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    api.post("/v1/alerts/evaluate", &s.admin, &json!({})).await;
    let page = s.get("/alerts", c).await;
    let b = &page.body;
    let history = section(b, r#"id="history""#, r#"id="rules""#);
    let row = section(history, &format!(r#"id="alert-{id}""#), "</details>");
    assert!(row.contains(r#"data-state="resolved""#) && row.contains("resolved "));
    assert_eq!(
        row.matches(r#"data-channel="ops-hook" data-delivered="true""#)
            .count(),
        2,
        "firing and resolved sent"
    );
    let rules = section(b, r#"id="rules""#, "</table>");
    assert!(
        section(rules, r#"data-rule="unpriced_ratio""#, "</tr>").contains("until Jan 1 00:00 UTC")
    );
    // These pages keep the view for the way back but reject what they do not know.
    assert_eq!(s.get("/alerts?range=24h&tenantId=x", c).await.status, 200);
    assert_eq!(s.get("/budgets?colour=red", c).await.status, 400);
}

#[tokio::test]
async fn unpriced_groups_read_unpriced_on_the_endpoints_and_models_pages_never_zero() {
    let s = setup();
    let api = Api::new(&s.server);
    let calls = now_calls("mystery", 3, "mystery-9000", "acme", None);
    let r = api.post("/v1/ingest/batch", &s.ingest, &json!(calls)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let c = &s.session(&s.read).await;
    for (page, key) in [
        ("/endpoints", "mystery.endpoint"),
        ("/models", "selfhosted/mystery-9000"),
    ] {
        let p = s.get(page, Some(c)).await;
        assert_eq!(p.status, 200, "{page}");
        let row = section(&p.body, &format!(r#"data-key="{key}""#), "</tr>");
        assert!(row.contains("unpriced (3 calls)"), "{page}: {row}");
        assert!(!row.contains("$0.00"), "{page}: {row}");
    }
}

#[tokio::test]
async fn no_spike_marker_on_a_handful_of_events() {
    // Six calls in a day, one hour holding three of them at 6x the typical hour: too few
    // calls for the spend-spike rule, so no "SPIKE" on the Overview either.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let s = Setup {
        server: Server::start(&db, &[]),
        db: db.clone(),
        read,
        admin: String::new(),
        ingest,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    };
    let api = Api::new(&s.server);
    let events: Vec<Value> = [
        (2, 0.01),
        (5, 0.01),
        (9, 0.01),
        (14, 0.02),
        (14, 0.02),
        (14, 0.02),
    ]
    .iter()
    .enumerate()
    .map(|(i, (hour, cost))| {
        json!({
            "externalRequestId": format!("few-{i}"), "provider": "openai",
            "model": "gpt-4o-mini", "endpointTag": "support.reply", "inputTokens": 100,
            "outputTokens": 10, "status": "success", "costUsd": cost,
            "timestamp": format!("2026-01-10T{hour:02}:{:02}:00Z", i * 5),
        })
    })
    .collect();
    let r = api
        .post("/v1/ingest/batch", &s.ingest, &json!(events))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let c = &s.session(&s.read).await;
    let p = s
        .get(
            "/?from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z",
            Some(c),
        )
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains(r#"id="spend""#), "the chart is there");
    assert!(!p.body.contains(r#"id="spike""#), "no spike on six calls");
}

/// A budget for each tenant shows, on the Budgets page, its members over and near their
/// own caps (the same counts as its status) and the worst of them first.
#[tokio::test]
async fn a_budget_for_each_tenant_shows_its_members_over_and_near_their_caps() {
    let s = setup();
    let api = Api::new(&s.server);
    let r = api
        .post(
            "/v1/budgets",
            &s.admin,
            &json!({"name": "each tenant", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 1, "action": "block"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    for (tag, tenant, cost) in [
        ("o", "t-over", 0.75),
        ("n", "t-near", 0.45),
        ("k", "t-ok", 0.1),
    ] {
        let calls = json!(now_calls(tag, 2, "race-model", tenant, Some(cost)));
        let r = api.post("/v1/ingest/batch", &s.ingest, &calls).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let status = api
        .get(&format!("/v1/budgets/{id}/status"), &s.read)
        .await
        .body;
    assert_eq!(status["members"]["over"], 1, "{status}");
    assert_eq!(status["members"]["near"], 1, "{status}");
    let c = s.session(&s.read).await;
    let page = s.get("/budgets", Some(c.as_str())).await;
    assert_eq!(page.status, 200);
    let card = section(&page.body, &format!(r#"id="budget-{id}""#), "</table>");
    assert!(card.contains(r#"data-members="3""#), "{card}");
    assert!(card.contains("Each tenant separately"), "{card}");
    let over = section(card, r#"data-count="over""#, "</span>");
    assert!(over.contains("<b class=\"tnum\">1</b>"), "{over}");
    let near = section(card, r#"data-count="near""#, "</span>");
    assert!(near.contains("<b class=\"tnum\">1</b>"), "{near}");
    let (first, second) = (
        card.find(r#"data-member="t-over""#).expect("t-over listed"),
        card.find(r#"data-member="t-near""#).expect("t-near listed"),
    );
    assert!(first < second, "most over first");
    assert!(
        !card.contains(r#"data-member="t-ok""#),
        "only members over or near"
    );
}

/// The value of the first `name="csrf"` field of a page.
fn csrf_of(body: &str) -> String {
    let field = section(body, r#"name="csrf" value=""#, r#"">"#);
    field[r#"name="csrf" value=""#.len()..].to_string()
}

#[tokio::test]
async fn admin_sessions_acknowledge_and_mute_alerts_with_their_csrf_token_read_sessions_cannot() {
    let s = setup();
    let api = Api::new(&s.server);
    let r = api
        .post(
            "/v1/ingest/batch",
            &s.ingest,
            &json!(now_calls("burst", 25, "mystery-now", "t-burst", None)),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.post("/v1/alerts/evaluate", &s.admin, &json!({})).await;
    let alert_of = |alerts: &Value| {
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "unpriced_ratio")
            .expect("the unpriced rule fired")
            .clone()
    };
    let alert = alert_of(&api.get("/v1/alerts", &s.read).await.body);
    let id = alert["id"].as_i64().unwrap();
    assert_eq!(alert["acknowledgedAt"], Value::Null);
    let id_text = id.to_string();

    let admin = s.session(&s.admin).await;
    let read = s.session(&s.read).await;
    let admin_page = s.get("/alerts", Some(&admin)).await;
    let card = section(
        &admin_page.body,
        &format!(r#"id="alert-{id}""#),
        r#"id="history""#,
    );
    assert!(
        card.contains("data-ack") && card.contains("data-mute"),
        "{card}"
    );
    let token = csrf_of(card);
    assert_eq!(token.len(), 64, "a SHA-256 in hex: {token}");
    // A read session sees no forms.
    let read_page = s.get("/alerts", Some(&read)).await;
    assert!(!read_page.body.contains("data-actions"));
    assert!(!read_page.body.contains(r#"name="csrf""#));

    let post = |path: &'static str, cookie: String, form: Vec<(&'static str, String)>| {
        let req = s
            .http
            .post(s.url(path))
            .header("cookie", cookie)
            .form(&form);
        s.send(req)
    };
    // Refused: a read session, even with the admin's token; the admin's session without
    // the token, with another token, or from another site's page; no session at all.
    let ack = |csrf: &str| vec![("id", id_text.clone()), ("csrf", csrf.to_string())];
    let refused = [
        ("read session", read.clone(), ack(&token), "read-only"),
        (
            "no token",
            admin.clone(),
            vec![("id", id_text.clone())],
            "csrf",
        ),
        ("wrong token", admin.clone(), ack(&"0".repeat(64)), "csrf"),
        ("empty token", admin.clone(), ack(""), "csrf"),
    ];
    for (what, cookie, form, why) in refused {
        let r = post("/alerts/ack", cookie, form).await;
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(r.body.contains(why), "{what}: {}", r.body);
    }
    let cross_site = s
        .http
        .post(s.url("/alerts/ack"))
        .header("cookie", &admin)
        .header("origin", "https://evil.example")
        .form(&ack(&token));
    assert_eq!(s.send(cross_site).await.status, 403);
    let anonymous = s.http.post(s.url("/alerts/ack")).form(&ack(&token));
    assert_eq!(s.send(anonymous).await.status, 401);
    let mute = |rule: &str, minutes: &str, csrf: &str| {
        vec![
            ("rule", rule.to_string()),
            ("minutes", minutes.to_string()),
            ("csrf", csrf.to_string()),
        ]
    };
    let r = post(
        "/alerts/mute",
        read.clone(),
        mute("unpriced_ratio", "60", &token),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Nothing changed.
    let alert = alert_of(&api.get("/v1/alerts", &s.read).await.body);
    assert_eq!(alert["acknowledgedAt"], Value::Null);
    let rules = api.get("/v1/alert-rules", &s.read).await.body;
    assert_eq!(rules["rules"]["unpriced_ratio"]["mutedUntil"], Value::Null);

    // Bad fields are named.
    let r = post(
        "/alerts/ack",
        admin.clone(),
        vec![("id", "x".into()), ("csrf", token.clone())],
    )
    .await;
    assert_eq!(
        (r.status, r.body.starts_with("id:")),
        (400, true),
        "{}",
        r.body
    );
    let r = post(
        "/alerts/ack",
        admin.clone(),
        vec![("id", "999999".into()), ("csrf", token.clone())],
    )
    .await;
    assert_eq!(
        (r.status, r.body.starts_with("id:")),
        (400, true),
        "{}",
        r.body
    );
    let r = post(
        "/alerts/mute",
        admin.clone(),
        mute("no_such_rule", "60", &token),
    )
    .await;
    assert_eq!(
        (r.status, r.body.starts_with("rule:")),
        (400, true),
        "{}",
        r.body
    );
    let r = post(
        "/alerts/mute",
        admin.clone(),
        mute("unpriced_ratio", "7", &token),
    )
    .await;
    assert_eq!(
        (r.status, r.body.starts_with("minutes:")),
        (400, true),
        "{}",
        r.body
    );

    // The admin's own page, with its token: acknowledged, then the rule muted for 1 hour.
    let before = jiff::Timestamp::now().as_millisecond();
    let r = post("/alerts/ack", admin.clone(), ack(&token)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/alerts#alert-{id}").as_str())
    );
    let r = post(
        "/alerts/mute",
        admin.clone(),
        mute("unpriced_ratio", "60", &token),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let after = jiff::Timestamp::now().as_millisecond();
    let ms = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    let alert = alert_of(&api.get("/v1/alerts", &s.read).await.body);
    let acked = ms(&alert["acknowledgedAt"]);
    assert!(before - 1000 <= acked && acked <= after, "{acked}");
    let rules = api.get("/v1/alert-rules", &s.read).await.body;
    let until = ms(&rules["rules"]["unpriced_ratio"]["mutedUntil"]);
    assert!(
        before - 1000 + 3_600_000 <= until && until <= after + 3_600_000,
        "muted for an hour: {until}"
    );
    let page = s.get("/alerts", Some(&admin)).await;
    let card = section(
        &page.body,
        &format!(r#"id="alert-{id}""#),
        r#"id="history""#,
    );
    assert!(card.contains("data-acknowledged"), "{card}");
    assert!(!card.contains("data-ack>"), "acknowledged once: {card}");
    // The acknowledgement outlives the minute's evaluation, which rewrites the alert.
    let r = api
        .put_json(
            "/v1/alert-rules",
            &s.admin,
            &json!({"rules": {"unpriced_ratio": {"mutedUntil": null}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    api.post("/v1/alerts/evaluate", &s.admin, &json!({})).await;
    let alert = alert_of(&api.get("/v1/alerts", &s.read).await.body);
    assert_eq!(ms(&alert["acknowledgedAt"]), acked);
}

#[tokio::test]
async fn most_expensive_requests_are_every_priced_call_of_the_window_by_cost() {
    let s = setup();
    let api = Api::new(&s.server);
    // Every call of the fixture's window, newest first (the reference), then ranked here.
    let all = api
        .get(&format!("/v1/events?{WINDOW}&limit=1000"), &s.read)
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    let events = all.body["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["costUsd"].is_null()),
        "the fixture has unpriced calls"
    );
    let mut priced: Vec<(i64, i64, String)> = events
        .iter()
        .filter(|e| !e["costUsd"].is_null())
        .map(|e| {
            let nanos = (e["costUsd"].as_f64().unwrap() * 1e9).round() as i64;
            let ts = e["timestamp"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond();
            (
                nanos,
                ts,
                e["externalRequestId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    priced.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    // The API in pages of 7: the same costs in the same order, each call once.
    let mut listed: Vec<(i64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/events?{WINDOW}&order=cost&limit=7");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.get(&path, &s.read).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for e in page.body["events"].as_array().unwrap() {
            let nanos = (e["costUsd"].as_f64().unwrap() * 1e9).round() as i64;
            listed.push((nanos, e["externalRequestId"].as_str().unwrap().to_string()));
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let costs = |v: &[(i64, String)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
    let expected: Vec<(i64, String)> = priced.iter().map(|p| (p.0, p.2.clone())).collect();
    assert_eq!(costs(&listed), costs(&expected));
    let mut ids: Vec<&String> = listed.iter().map(|x| &x.1).collect();
    let mut want: Vec<&String> = expected.iter().map(|x| &x.1).collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want, "every priced call once");
    let r = api
        .get(&format!("/v1/events?{WINDOW}&order=dear"), &s.read)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.to_string().contains("order"), "{}", r.body);

    // The Requests page's "Most expensive": the dearest call first.
    let c = s.session(&s.read).await;
    let page = s
        .get(&format!("/requests?{WINDOW}&order=cost"), Some(&c))
        .await;
    assert_eq!(page.status, 200);
    let first = section(&page.body, "data-request-id=\"", "\"");
    assert_eq!(&first["data-request-id=\"".len()..], expected[0].1);
    assert!(page.body.contains(r#"class="on" data-order="cost""#));
    let bad = s
        .get(&format!("/requests?{WINDOW}&order=dear"), Some(&c))
        .await;
    assert_eq!(bad.status, 400);
}
