//! Property: for random events (retries, replacements, missing dimensions included) and
//! random queries, the answer from rollups equals the answer from raw events, exactly,
//! also after a reopen (rollups rebuilt) and while commits race the reads.

use burnrate::event::{DataMode, Environment, Status};
use burnrate::ingest;
use burnrate::price::PriceBook;
use burnrate::query::QueryRequest;
use burnrate::query::{Dimension, Filters};
use burnrate::store::sqlite::SqliteStore;
use burnrate::store::{EventOrder, EventQuery, EventStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn random_event(rng: &mut StdRng, id: usize, start: i64) -> Value {
    let ts = start + rng.random_range(0..3 * DAY);
    let mut e = json!({
        "externalRequestId": format!("p{id}"),
        "timestamp": jiff::Timestamp::from_millisecond(ts).unwrap().to_string(),
        "provider": "openai",
        "model": pick(rng, &["gpt-4o-mini", "gpt-4o", "mystery-model"]),
        "endpointTag": pick(rng, &["a", "b", "c", "d"]),
        "environment": pick(rng, &["prod", "prod", "staging"]),
        "dataMode": pick(rng, &["real", "real", "test"]),
        "status": pick(rng, &["success", "success", "success", "error"]),
        "inputTokens": rng.random_range(0..5000),
        "outputTokens": rng.random_range(0..800),
    });
    e["cachedTokens"] = json!(rng.random_range(0..=e["inputTokens"].as_u64().unwrap()));
    if rng.random_bool(0.8) {
        e["tenantId"] = json!(pick(rng, &["t1", "t2", "t3", "t4", "t5"]));
    }
    if rng.random_bool(0.7) {
        e["userId"] = json!(pick(rng, &["u1", "u2", "u3", "u4", "u5", "u6"]));
    }
    if rng.random_bool(0.6) {
        e["promptVersion"] = json!(pick(rng, &["v1", "v2"]));
    }
    if rng.random_bool(0.8) {
        e["latencyMs"] = json!(rng.random_range(50..5000));
    }
    if rng.random_bool(0.5) {
        e["tags"] = json!({"team": pick(rng, &["x", "y"])});
    }
    e
}

/// A later attempt of event `e`: sometimes without usage, sometimes replacing it with other
/// tokens, time, model and tenant.
fn retry(rng: &mut StdRng, e: &Value, attempt: u64) -> Value {
    let mut r = e.clone();
    r["attempt"] = json!(attempt);
    if rng.random_bool(0.4) {
        r["usageMissing"] = json!(true);
        r["status"] = json!("rate_limited");
    } else {
        r["status"] = json!("success");
        r["inputTokens"] = json!(rng.random_range(100..3000));
        r["cachedTokens"] = json!(0);
        r["model"] = json!(pick(rng, &["gpt-4o-mini", "gpt-4o"]));
        r["tenantId"] = json!(pick(rng, &["t1", "t6"]));
    }
    r
}

/// A window around the events' three days, its ends on an hour, a day or neither.
fn random_window(rng: &mut StdRng, start: i64) -> (i64, i64) {
    let align = |t: i64, rng: &mut StdRng| match rng.random_range(0..3) {
        0 => t.div_euclid(HOUR) * HOUR,
        1 => t.div_euclid(DAY) * DAY,
        _ => t,
    };
    let a = align(start - HOUR + rng.random_range(0..4 * DAY), rng);
    let b = align(start - HOUR + rng.random_range(0..4 * DAY), rng);
    (a.min(b), a.max(b))
}

fn random_query(rng: &mut StdRng, start: i64) -> Value {
    let (from, to) = random_window(rng, start);
    let dims = [
        "endpointTag",
        "promptVersion",
        "tenantId",
        "userId",
        "provider",
        "model",
        "environment",
        "dataMode",
        "status",
        "tag:team",
    ];
    let group_by: Vec<&str> = (0..rng.random_range(0..=3))
        .map(|_| *pick(rng, &dims))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut filters = serde_json::Map::new();
    if rng.random_bool(0.5) {
        filters.insert("environment".into(), json!(["prod", "staging"]));
        filters.insert("dataMode".into(), json!(["real", "test"]));
    }
    for (name, values) in [
        ("endpointTag", &["a", "b", "c"][..]),
        ("tenantId", &["t1", "unknown"][..]),
        ("userId", &["u1", "u2"][..]),
        ("status", &["success"][..]),
        ("model", &["gpt-4o"][..]),
        ("tag:team", &["x", "unknown"][..]),
    ] {
        if rng.random_bool(0.2) {
            filters.insert(name.into(), json!(values));
        }
    }
    let mut q = json!({
        "from": jiff::Timestamp::from_millisecond(from).unwrap().to_string(),
        "to": jiff::Timestamp::from_millisecond(to).unwrap().to_string(),
        "groupBy": group_by,
        "filters": filters,
        "measures": ["requests", "attempts", "costUsd", "inputTokens", "cachedTokens", "outputTokens", "latencyAvgMs", "errorRate", "unpriced"],
        "limit": 10000,
    });
    match rng.random_range(0..3) {
        0 => q["bucket"] = json!("hour"),
        1 => q["bucket"] = json!("day"),
        _ => {}
    }
    q
}

#[tokio::test]
async fn rollups_answer_exactly_what_raw_events_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
    let book = PriceBook::bundled().unwrap();
    let mut rng = StdRng::seed_from_u64(20261125);
    let now = jiff::Timestamp::now().as_millisecond();
    let start = (now - 4 * DAY).div_euclid(DAY) * DAY + 7 * 60_000 + 13_000;
    let mut texts = Vec::new();
    for id in 0..3000 {
        let e = random_event(&mut rng, id, start);
        if rng.random_bool(0.1) {
            texts.push(retry(&mut rng, &e, 2).to_string());
        }
        texts.push(e.to_string());
        if rng.random_bool(0.05) {
            texts.push(e.to_string()); // a resend
        }
    }
    for chunk in texts.chunks(700) {
        let items = chunk.iter().map(|t| ingest::parse_item(t)).collect();
        let prepared = ingest::prepare(items, &book, &Default::default(), now);
        assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
        store.ingest(1, prepared.events).await.unwrap();
    }
    let mut compared = 0;
    for _ in 0..300 {
        let request: QueryRequest = serde_json::from_value(random_query(&mut rng, start)).unwrap();
        let query = request.check(now).unwrap();
        let from_rollups = store.aggregate(1, query.clone()).await.unwrap();
        let from_raw = store.aggregate_raw(1, query.clone()).await.unwrap();
        assert_eq!(from_rollups, from_raw, "query {query:?}");
        compared += from_raw.rows.len();
    }
    assert!(
        compared > 1000,
        "the queries must return rows to compare ({compared})"
    );
    store.close().await;
    // The rollups live in memory: reopened, they are summed from the events again and
    // must answer the same.
    let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
    for _ in 0..100 {
        let request: QueryRequest = serde_json::from_value(random_query(&mut rng, start)).unwrap();
        let query = request.check(now).unwrap();
        let from_rollups = store.aggregate(1, query.clone()).await.unwrap();
        let from_raw = store.aggregate_raw(1, query.clone()).await.unwrap();
        assert_eq!(from_rollups, from_raw, "after reopening, query {query:?}");
    }
    store.close().await;
}

/// A window of users starting on an old day (before the users' recent hourly cells)
/// reads that day's partial part raw once; the read asks for the day's hourly cells (a
/// pin), built off the read while commits add, replace and move calls of that day. Once
/// built, every answer still equals the raw events' answer, and more old days than are
/// pinned at once change nothing either (giving way: `rollup`'s unit tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_days_read_by_hour_answer_exactly_while_commits_race_their_build() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("o.db")).unwrap());
    let book = std::sync::Arc::new(PriceBook::bundled().unwrap());
    let mut rng = StdRng::seed_from_u64(20261203);
    let now = jiff::Timestamp::now().as_millisecond();
    let today = now.div_euclid(DAY) * DAY;
    let at = |t: i64| jiff::Timestamp::from_millisecond(t).unwrap().to_string();
    let event = |rng: &mut StdRng, id: String, ts: i64, attempt: u64| {
        json!({"externalRequestId": id, "attempt": attempt, "timestamp": at(ts),
            "provider": "openai", "model": pick(rng, &["gpt-4o", "gpt-4o-mini"]),
            "endpointTag": pick(rng, &["e", "f", "g"]),
            "tenantId": format!("t{}", rng.random_range(0..4)),
            "userId": format!("u{}", rng.random_range(0..40)),
            "dataMode": pick(rng, &["real", "test"]), "status": "success",
            "inputTokens": rng.random_range(1..5000), "outputTokens": rng.random_range(0..900)})
        .to_string()
    };
    let ingest_all = |texts: Vec<String>| {
        let store = store.clone();
        let book = book.clone();
        async move {
            for chunk in texts.chunks(300) {
                let items = chunk.iter().map(|t| ingest::parse_item(t)).collect();
                let prepared = ingest::prepare(items, &book, &Default::default(), now);
                assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
                store.ingest(1, prepared.events).await.unwrap();
            }
        }
    };
    // Calls over the last 8 days, the newest now.
    let mut texts: Vec<String> = (0..4000)
        .map(|i| {
            let ts = now - rng.random_range(0..8 * DAY);
            event(&mut rng, format!("c{i}"), ts, 1)
        })
        .collect();
    texts.push(event(&mut rng, "newest".into(), now - 1000, 1));
    ingest_all(texts).await;
    // `shape` (group-by, filters) over [from, now).
    let query = |from: i64, bucket: Option<&str>, shape: Value| {
        let mut q = shape;
        q["from"] = json!(at(from));
        q["to"] = json!(at(now));
        q["measures"] = json!(["requests", "costUsd", "inputTokens", "outputTokens"]);
        q["limit"] = json!(10000);
        if let Some(b) = bucket {
            q["bucket"] = json!(b);
        }
        serde_json::from_value::<QueryRequest>(q)
            .unwrap()
            .check(now)
            .unwrap()
    };
    let users =
        |from: i64, bucket: Option<&str>| query(from, bucket, json!({"groupBy": ["userId"]}));
    // A tenant's endpoints and models: the tenant_detail family, pinned with the users.
    let tenant_endpoints = |from: i64, bucket: Option<&str>| {
        let shape = json!({"groupBy": ["endpointTag", "model"],
            "filters": {"tenantId": ["t1"], "dataMode": ["real", "test"]}});
        query(from, bucket, shape)
    };
    let old_day = today - 5 * DAY;
    let compare_one = |query: burnrate::query::Query| {
        let store = store.clone();
        async move {
            let from_rollups = store.aggregate(1, query.clone()).await.unwrap();
            let from_raw = store.aggregate_raw(1, query.clone()).await.unwrap();
            assert_eq!(from_rollups, from_raw, "query {query:?}");
            from_raw.rows.len()
        }
    };
    let compare = |query: burnrate::query::Query| {
        let compare_one = &compare_one;
        let tenant = tenant_endpoints(query.from_ms, query.bucket.map(|_| "day"));
        async move {
            assert!(compare_one(tenant).await > 0);
            compare_one(query).await
        }
    };
    // The first read asks for the old day's pin; commits race its build: new calls on
    // that day, and later attempts that move calls into and out of it.
    assert!(compare(users(old_day + 3 * HOUR + 17_000, None)).await > 10);
    let mut racing = Vec::new();
    for i in 0..600 {
        let ts = old_day + rng.random_range(0..DAY);
        racing.push(event(&mut rng, format!("r{i}"), ts, 1));
        let moved = old_day + rng.random_range(-DAY..2 * DAY);
        let id = format!("c{}", rng.random_range(0..4000));
        racing.push(event(&mut rng, id, moved, 2));
    }
    ingest_all(racing).await;
    let mut waited = 0;
    while !store.pinned_days(1).await.unwrap().contains(&old_day) {
        assert!(waited < 200, "the old day was never pinned");
        compare(users(old_day + 3 * HOUR + 17_000, None)).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    for _ in 0..60 {
        let from = old_day + rng.random_range(0..DAY);
        let bucket = *pick(&mut rng, &[None, Some("day")]);
        compare(users(from, bucket)).await;
    }
    // Old days beyond what is kept at once: each asks for its pin, those past the
    // fourth read raw (no pin gives way within its first 10 minutes), and the answers
    // stay exact throughout.
    for back in 2..8 {
        for _ in 0..3 {
            let from = today - back * DAY + rng.random_range(HOUR..DAY - HOUR);
            compare(users(from, None)).await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let pinned = store.pinned_days(1).await.unwrap();
    assert!(pinned.contains(&old_day) && pinned.len() <= 4, "{pinned:?}");
    for _ in 0..40 {
        let from = today - rng.random_range(2..8) * DAY + rng.random_range(0..DAY);
        compare(users(from, None)).await;
    }
}

/// A read answers whole hours from the in-memory rollups and the partial hours at its
/// edges from raw events: both parts must come from the same commit. Every commit here
/// adds one call in a whole hour and one in an edge, so a read that saw a commit in one
/// part and not in the other would count an odd number of calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_never_sees_a_commit_in_the_rollups_and_not_in_the_raw_edges() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
    let book = PriceBook::bundled().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let base = (now - 5 * HOUR).div_euclid(HOUR) * HOUR;
    let at = |t: i64| jiff::Timestamp::from_millisecond(t).unwrap().to_string();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                let pair = [
                    json!({"externalRequestId": format!("w{i}"), "timestamp": at(base + HOUR + 1000),
                        "provider": "openai", "model": "gpt-4o", "endpointTag": "e", "status": "success", "inputTokens": 10}),
                    json!({"externalRequestId": format!("e{i}"), "timestamp": at(base + 30 * 60_000),
                        "provider": "openai", "model": "gpt-4o", "endpointTag": "e", "status": "success", "inputTokens": 10}),
                ];
                let texts: Vec<String> = pair.iter().map(Value::to_string).collect();
                let items = texts.iter().map(|t| ingest::parse_item(t)).collect();
                let prepared = ingest::prepare(items, &book, &Default::default(), now);
                assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
                store.ingest(1, prepared.events).await.unwrap();
            }
        })
    };
    // From the middle of the first hour (raw) over two whole hours (rollups).
    let query: QueryRequest = serde_json::from_value(json!({
        "from": at(base + 15 * 60_000), "to": at(base + 3 * HOUR), "measures": ["requests"]
    }))
    .unwrap();
    let query = query.check(now).unwrap();
    let mut reads = 0;
    let mut seen_calls = false;
    while !writer.is_finished() {
        let answer = store.aggregate(1, query.clone()).await.unwrap();
        let requests: u64 = answer.rows.iter().map(|r| r.sums.requests).sum();
        assert_eq!(
            requests % 2,
            0,
            "a torn read after {reads} reads: {requests} calls"
        );
        seen_calls |= requests > 0 && requests < 800;
        reads += 1;
    }
    writer.await.unwrap();
    let answer = store.aggregate(1, query).await.unwrap();
    assert_eq!(answer.rows[0].sums.requests, 800);
    let seq = store.commit_seq().await.unwrap();
    assert!(seq >= 400, "{seq}");
    assert!(
        reads > 10 && seen_calls,
        "the reads must race the writes ({reads})"
    );
}

/// A prompt version stored by an acknowledged ingest is among the versions seen at once,
/// although the rollups' fold thread adds it after the writer answered (regression: the
/// alert rules read the versions seen right after an ingest and missed a new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_ingested_is_seen_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let book = PriceBook::bundled().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let ts = jiff::Timestamp::from_millisecond(now - HOUR)
        .unwrap()
        .to_string();
    for i in 0..300 {
        // A batch, so the fold has thousands of cells to add after the answer.
        let texts: Vec<String> = (0..50)
            .map(|j| {
                json!({"externalRequestId": format!("v{i}-{j}"), "timestamp": ts, "provider": "openai",
                    "model": "gpt-4o", "endpointTag": "e", "promptVersion": format!("v{i}"),
                    "userId": format!("u{i}-{j}"), "status": "success", "inputTokens": 10})
                .to_string()
            })
            .collect();
        let items = texts.iter().map(|t| ingest::parse_item(t)).collect();
        let prepared = ingest::prepare(items, &book, &Default::default(), now);
        store.ingest(1, prepared.events).await.unwrap();
        let seen = store.versions_seen(1, Default::default()).await.unwrap();
        assert!(
            seen.iter().any(|v| v.prompt_version == format!("v{i}")),
            "v{i} missing after its ingest"
        );
    }
}

/// Regression: a rollup schema change must rebuild the tables in their new shape, not keep
/// an older table with other columns.
#[tokio::test]
async fn an_older_rollup_schema_is_replaced_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('rollups_version', '0');
             CREATE TABLE rollup_main_hour (workspace_id INTEGER, bucket INTEGER, requests INTEGER);
             CREATE TABLE rollup_user_hour (workspace_id INTEGER);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let book = PriceBook::bundled().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let text = json!({"externalRequestId": "r", "provider": "openai", "model": "gpt-4o", "endpointTag": "e", "status": "success", "inputTokens": 10}).to_string();
    let prepared = ingest::prepare(
        vec![ingest::parse_item(&text)],
        &book,
        &Default::default(),
        now,
    );
    store.ingest(1, prepared.events).await.unwrap();
    let query = serde_json::from_value::<QueryRequest>(json!({"groupBy": ["endpointTag"]}))
        .unwrap()
        .check(now + 1000)
        .unwrap();
    assert_eq!(
        store.aggregate(1, query).await.unwrap().rows[0]
            .sums
            .requests,
        1
    );
    store.close().await;
}

/// `burnrate import` may write to the file of a running server: the server's in-memory
/// rollups do not see those commits, so its reads would wait for a sequence that never
/// comes, or leave the events out. The writer rebuilds them when the sequence jumped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_another_process_commits_are_counted_by_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.db");
    let server = SqliteStore::open(&path).unwrap();
    let importer = SqliteStore::open(&path).unwrap();
    let book = PriceBook::bundled().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let hour_ago = jiff::Timestamp::from_millisecond(now - 2 * HOUR)
        .unwrap()
        .to_string();
    let events = |prefix: &str| {
        let texts: Vec<String> = (0..5)
            .map(|i| {
                json!({"externalRequestId": format!("{prefix}{i}"), "timestamp": hour_ago,
                    "provider": "openai", "model": "gpt-4o", "endpointTag": "e",
                    "status": "success", "inputTokens": 10})
                .to_string()
            })
            .collect();
        let items = texts.iter().map(|t| ingest::parse_item(t)).collect();
        ingest::prepare(items, &book, &Default::default(), now).events
    };
    server.ingest(1, events("s")).await.unwrap();
    importer.ingest(1, events("i")).await.unwrap();
    // A whole-day window: answered from the rollups.
    let from = jiff::Timestamp::from_millisecond(now - 3 * DAY)
        .unwrap()
        .to_string();
    let query: QueryRequest =
        serde_json::from_value(json!({"from": from, "measures": ["requests"]})).unwrap();
    let query = query.check(now).unwrap();
    let answer = server.aggregate(1, query.clone()).await.unwrap();
    assert_eq!(answer.rows[0].sums.requests, 10);
    // And the server's own next commit lands on top of the rebuilt totals.
    server.ingest(1, events("t")).await.unwrap();
    let answer = server.aggregate(1, query).await.unwrap();
    assert_eq!(answer.rows[0].sums.requests, 15);
    importer.close().await;
    server.close().await;
}

/// A costliest-first page query: a random window (or none), random filters (the
/// tenant, endpoint and model ones pick the lists read; a name never stored and a
/// missing tenant included) and a random page size.
fn random_costliest(rng: &mut StdRng, start: i64) -> EventQuery {
    let window = rng.random_bool(0.9).then(|| random_window(rng, start));
    let mut filters = Filters::default();
    let mut text = |rng: &mut StdRng, d: Dimension, values: &[&str]| {
        if rng.random_bool(0.3) {
            let n = rng.random_range(1..=2);
            let picked = (0..n).map(|_| pick(rng, values).to_string()).collect();
            filters.text.insert(d, picked);
        }
    };
    text(
        rng,
        Dimension::TenantId,
        &["t1", "t2", "t6", "unknown", "nobody"],
    );
    text(rng, Dimension::EndpointTag, &["a", "b", "zzz"]);
    text(rng, Dimension::Model, &["gpt-4o", "gpt-4o-mini"]);
    text(rng, Dimension::UserId, &["u1", "u2"]);
    if rng.random_bool(0.3) {
        filters.environment = vec![*pick(rng, &[Environment::Prod, Environment::Staging])];
    }
    if rng.random_bool(0.3) {
        filters.data_mode = vec![DataMode::Real];
    }
    if rng.random_bool(0.2) {
        filters.status = vec![Status::Success];
    }
    EventQuery {
        external_request_id: None,
        window,
        filters: Some(filters),
        cursor: None,
        limit: *pick(rng, &[1, 3, 10, 20, 50, 150]),
        order: EventOrder::Costliest,
    }
}

/// Up to five pages of `query` from the store's costliest lists equal the pages read
/// from the window's rows, cursors included; the number of calls compared.
async fn compare_costliest_pages(store: &SqliteStore, mut query: EventQuery) -> usize {
    let mut compared = 0;
    for _ in 0..5 {
        let listed = store.events(1, query.clone()).await.unwrap();
        let raw = store.events_raw(1, query.clone()).await.unwrap();
        assert_eq!(
            serde_json::to_value(&listed).unwrap(),
            serde_json::to_value(&raw).unwrap(),
            "query {query:?}"
        );
        compared += raw.events.len();
        match raw.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    compared
}

/// The most expensive calls of a window come from lists the fold keeps per day (of all
/// calls, and per tenant, endpoint and model), which let go of calls past their
/// capacity: every page equals the raw rows' page, while retries replace calls (new
/// cost, tenant and model) commit by commit, and after a reopen rebuilt the lists.
#[tokio::test]
async fn costliest_pages_from_the_lists_equal_the_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let book = PriceBook::bundled().unwrap();
    let mut rng = StdRng::seed_from_u64(20261205);
    let now = jiff::Timestamp::now().as_millisecond();
    let start = (now - 4 * DAY).div_euclid(DAY) * DAY + 7 * 60_000 + 13_000;
    let mut texts = Vec::new();
    let mut sent = Vec::new();
    for id in 0..4000 {
        let e = random_event(&mut rng, id, start);
        texts.push(e.to_string());
        sent.push(e);
    }
    // Retries of earlier calls arrive in later commits: old values leave the lists.
    for i in 0..600 {
        let e = sent[rng.random_range(0..sent.len())].clone();
        texts.insert(
            rng.random_range(i..texts.len()),
            retry(&mut rng, &e, 2).to_string(),
        );
    }
    let mut compared = 0;
    for chunk in texts.chunks(500) {
        let items = chunk.iter().map(|t| ingest::parse_item(t)).collect();
        let prepared = ingest::prepare(items, &book, &Default::default(), now);
        store.ingest(1, prepared.events).await.unwrap();
        for _ in 0..15 {
            compared += compare_costliest_pages(&store, random_costliest(&mut rng, start)).await;
        }
    }
    store.close().await;
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    for _ in 0..60 {
        compared += compare_costliest_pages(&store, random_costliest(&mut rng, start)).await;
    }
    assert!(compared > 10_000, "pages must hold calls ({compared})");
    store.close().await;
}
