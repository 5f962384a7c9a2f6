//! The explain module's unit tests: the split's exactness, the drivers and their words.

use super::*;
use rand::{Rng, SeedableRng};

const USD: i64 = 1_000_000_000;

fn sums(requests: u64, cost: i64) -> Sums {
    Sums {
        requests,
        attempts: requests,
        priced: requests,
        cost: Usd(cost),
        ..Default::default()
    }
}

fn row(value: &str, requests: u64, cost: i64) -> Row {
    Row {
        group: vec![value.to_string()],
        bucket_ms: None,
        sums: sums(requests, cost),
    }
}

fn parts(v: i64, r: i64) -> Split {
    Split {
        volume_usd: Usd(v),
        cost_per_request_usd: Usd(r),
    }
}

#[test]
fn unpriced_calls_are_no_volume_and_an_unpriced_group_has_no_cost() {
    // 2 priced calls at $0.01 -> 3 priced at $0.02 average, plus unpriced calls on
    // both sides: cost/request is over priced calls (the one definition), the split
    // counts priced calls, and a group whose calls are all unpriced has no cost.
    let mixed = |priced: u64, unpriced: u64, cost: i64| Row {
        group: vec!["support.reply".into()],
        bucket_ms: None,
        sums: Sums {
            requests: priced + unpriced,
            priced,
            cost: Usd(cost),
            ..Default::default()
        },
    };
    let mut unknown = mixed(0, 4, 0);
    unknown.group = vec!["labs.unpriced".into()];
    let d = dimension_change(
        &Dimension::EndpointTag,
        &[mixed(2, 1, 20_000_000), unknown.clone()],
        &[mixed(3, 2, 60_000_000), unknown],
    );
    let g = d
        .groups
        .iter()
        .find(|g| g.value == "support.reply")
        .unwrap();
    assert_eq!(g.cost_per_request.current, Some(Usd(20_000_000)));
    assert_eq!(g.split, parts(15_000_000, 25_000_000));
    let u = d
        .groups
        .iter()
        .find(|g| g.value == "labs.unpriced")
        .unwrap();
    assert_eq!(
        u.cost_usd,
        Pair {
            baseline: None,
            current: None
        }
    );
    assert_eq!(
        u.unpriced,
        Pair {
            baseline: 4,
            current: 4
        }
    );
    assert_eq!(u.cost_per_request.current, None);
}

#[test]
fn volume_only() {
    // 100 -> 200 requests at $0.01 each: all of the +$1 is volume.
    assert_eq!(split(100, Usd(USD), 200, Usd(2 * USD)), parts(USD, 0));
}

#[test]
fn price_only() {
    // 100 requests, $0.01 -> $0.03 each: all of the +$2 is cost/request.
    assert_eq!(split(100, Usd(USD), 100, Usd(3 * USD)), parts(0, 2 * USD));
}

#[test]
fn both_at_the_midpoint() {
    // 100 -> 200 requests, $0.01 -> $0.015: volume 100 x $0.0125 = $1.25,
    // cost/request $0.005 x 150 = $0.75; together the +$2.
    assert_eq!(
        split(100, Usd(USD), 200, Usd(3 * USD)),
        parts(1_250_000_000, 750_000_000)
    );
    // Swapping the windows negates both parts (the midpoint split is symmetric).
    assert_eq!(
        split(200, Usd(3 * USD), 100, Usd(USD)),
        parts(-1_250_000_000, -750_000_000)
    );
}

#[test]
fn rounding_goes_to_the_nearest_nano_and_the_rest_to_cost_per_request() {
    // 3 -> 7 requests, 10 -> 20 nanos: exact volume 520/42 = 12.38, cost/request
    // -2.38; volume rounds to 12, cost/request takes -2 so they add up to 10.
    assert_eq!(split(3, Usd(10), 7, Usd(20)), parts(12, -2));
    // A half rounds away from zero: 1 -> 2 requests, 0 -> 2 nanos: volume 1 x 0.5,
    // cost/request 1 x 1.5; and the same backwards.
    assert_eq!(split(1, Usd(0), 2, Usd(2)), parts(1, 1));
    assert_eq!(split(2, Usd(2), 1, Usd(0)), parts(-1, -1));
}

#[test]
fn zero_baseline_cost_and_zero_baseline_requests() {
    // $0 before (unpriced or failed calls): 10 -> 20 requests, $0 -> $2. Volume at
    // the mean cost/request ($0.05) x 10 = $0.50, the rest is cost/request.
    assert_eq!(
        split(10, Usd(0), 20, Usd(2 * USD)),
        parts(500_000_000, 1_500_000_000)
    );
    // No requests before: everything is volume (the group is new).
    assert_eq!(split(0, Usd(0), 5, Usd(USD)), parts(USD, 0));
    let e = explain(&Input {
        current: (10, 20),
        baseline: (0, 10),
        total: Pair {
            baseline: Sums::default(),
            current: sums(5, USD),
        },
        ..Default::default()
    });
    assert_eq!(e.effects, parts(USD, 0));
    assert_eq!(e.change_pct, None);
    assert!(
        e.summary.starts_with("Spend rose from $0.00 to $1.00"),
        "{}",
        e.summary
    );
}

#[test]
fn new_and_vanished_groups_are_their_own_parts() {
    let d = dimension_change(
        &Dimension::TenantId,
        &[row("a", 100, USD), row("gone", 10, 300_000_000)],
        &[row("a", 200, 2 * USD), row("fresh", 4, 800_000_000)],
    );
    assert_eq!(d.change_usd, Usd(USD + 800_000_000 - 300_000_000));
    assert_eq!(d.split, parts(USD, 0));
    assert_eq!(d.new_usd, Usd(800_000_000));
    assert_eq!(d.vanished_usd, Usd(-300_000_000));
    let by_value = |v: &str| d.groups.iter().find(|g| g.value == v).unwrap();
    assert_eq!(by_value("fresh").presence, Presence::New);
    assert_eq!(by_value("gone").presence, Presence::Vanished);
    assert_eq!(by_value("a").presence, Presence::Both);
    // Ranked by the size of the change; shares of the $1.50 change.
    let order: Vec<&str> = d.groups.iter().map(|g| g.value.as_str()).collect();
    assert_eq!(order, ["a", "fresh", "gone"]);
    assert_eq!(by_value("gone").share_of_change_pct, Some(-20.0));
}

#[test]
fn parts_add_up_exactly_on_random_groups() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..200 {
        let mut base = Vec::new();
        let mut cur = Vec::new();
        for g in 0..rng.random_range(1..12) {
            let name = format!("g{g}");
            if rng.random_bool(0.85) {
                base.push(row(
                    &name,
                    rng.random_range(1..100_000),
                    rng.random_range(0..10_000 * USD),
                ));
            }
            if rng.random_bool(0.85) {
                cur.push(row(
                    &name,
                    rng.random_range(1..100_000),
                    rng.random_range(0..10_000 * USD),
                ));
            }
        }
        let d = dimension_change(&Dimension::Model, &base, &cur);
        let total: i64 = cur.iter().map(|r| r.sums.cost.0).sum::<i64>()
            - base.iter().map(|r| r.sums.cost.0).sum::<i64>();
        assert_eq!(d.change_usd.0, total);
        let parts =
            d.split.volume_usd.0 + d.split.cost_per_request_usd.0 + d.new_usd.0 + d.vanished_usd.0;
        assert_eq!(parts, total);
        for g in &d.groups {
            assert_eq!(
                g.split.volume_usd.0 + g.split.cost_per_request_usd.0,
                g.change_usd.0
            );
            if g.presence == Presence::Both {
                // Within half a nano of the real-valued Shapley volume effect.
                let (n0, n1) = (g.requests.baseline as f64, g.requests.current as f64);
                let (c0, c1) = (
                    g.cost_usd.baseline.unwrap().0 as f64,
                    g.cost_usd.current.unwrap().0 as f64,
                );
                let exact = (n1 - n0) * (c0 / n0 + c1 / n1) / 2.0;
                assert!((g.split.volume_usd.0 as f64 - exact).abs() <= 0.5 + exact.abs() * 1e-12);
            }
        }
    }
}

fn two_dims(endpoints: Pair<Vec<Row>>, tenants: Pair<Vec<Row>>) -> Input {
    let total = |rows: &[Row]| Sums::total(rows.iter().map(|r| &r.sums)).unwrap();
    Input {
        current: (7 * 86_400_000, 14 * 86_400_000),
        baseline: (0, 7 * 86_400_000),
        total: Pair {
            baseline: total(&endpoints.baseline),
            current: total(&endpoints.current),
        },
        dimensions: vec![
            (Dimension::EndpointTag, endpoints),
            (Dimension::TenantId, tenants),
        ],
        endpoints: vec![],
        deploys: vec![],
    }
}

#[test]
fn the_first_driver_is_the_largest_change_with_its_kind() {
    // support.reply triples its volume; chat.assist is flat; tenants share it out.
    let e = explain(&two_dims(
        Pair {
            baseline: vec![
                row("support.reply", 100, USD),
                row("chat.assist", 100, 2 * USD),
            ],
            current: vec![
                row("support.reply", 300, 3 * USD),
                row("chat.assist", 100, 2 * USD),
            ],
        },
        Pair {
            baseline: vec![
                row("acme", 100, 1_500_000_000),
                row("globex", 100, 1_500_000_000),
            ],
            current: vec![
                row("acme", 200, 2_500_000_000),
                row("globex", 200, 2_500_000_000),
            ],
        },
    ));
    assert_eq!(e.change_usd, Usd(2 * USD));
    let d = &e.drivers[0];
    assert_eq!(
        (d.kind, d.dimension.as_str(), d.value.as_str()),
        (Kind::Volume, "endpointTag", "support.reply")
    );
    assert_eq!(d.contribution_pct, Some(100.0));
    assert_eq!(
        d.sentence,
        "100% of the rise comes from endpoint support.reply, whose volume rose 3.0x (100 → 300 requests); cost/request was flat ($0.01 → $0.01)."
    );
    assert!(
        e.summary
            .starts_with("Spend rose from $3.00 to $5.00 (+67%)"),
        "{}",
        e.summary
    );
    // Overall, more of the cheaper endpoint lowers the mean cost/request: the split
    // of the totals shows that; the endpoint dimension's split shows pure volume.
    assert!(
        e.summary
            .contains("volume effect +$2.75, cost/request effect −$0.75"),
        "{}",
        e.summary
    );
    assert_eq!(e.dimensions[0].split, parts(2 * USD, 0));
    let tenants: Vec<(&str, Kind)> = e.drivers[1..]
        .iter()
        .map(|d| (d.value.as_str(), d.kind))
        .collect();
    assert_eq!(tenants, [("acme", Kind::Volume), ("globex", Kind::Volume)]);
}

#[test]
fn a_new_prompt_version_explains_its_endpoint_and_is_not_listed_again() {
    let day = 86_400_000;
    let v = |value: &str, b: Sums, c: Sums, first: i64| MixInput {
        value: value.into(),
        sums: Pair {
            baseline: b,
            current: c,
        },
        first_seen_ms: Some(first),
    };
    let endpoint = EndpointInput {
        endpoint: "summarize.doc".into(),
        sums: Pair {
            baseline: sums(100, USD),
            current: sums(100, 2_900_000_000),
        },
        versions: vec![
            v("v3", sums(100, USD), sums(0, 0), 0),
            v("v4", sums(0, 0), sums(100, 2_900_000_000), 9 * day),
        ],
        models: vec![],
    };
    let mut input = two_dims(
        Pair {
            baseline: vec![row("summarize.doc", 100, USD)],
            current: vec![row("summarize.doc", 100, 2_900_000_000)],
        },
        Pair {
            baseline: vec![row("acme", 100, USD)],
            current: vec![row("acme", 100, 2_900_000_000)],
        },
    );
    input.dimensions.push((
        Dimension::PromptVersion,
        Pair {
            baseline: vec![row("v3", 100, USD)],
            current: vec![row("v4", 100, 2_900_000_000)],
        },
    ));
    input.endpoints = vec![endpoint];
    let e = explain(&input);
    let d = &e.drivers[0];
    assert_eq!(
        (d.kind, d.dimension.as_str(), d.value.as_str()),
        (Kind::PromptVersion, "promptVersion", "v4")
    );
    assert_eq!(d.endpoint_tag.as_deref(), Some("summarize.doc"));
    assert_eq!(d.contribution_usd, Usd(1_900_000_000));
    assert_eq!(
        d.sentence,
        "100% of the rise comes from endpoint summarize.doc, whose cost/request rose 2.9x ($0.01 → $0.029) after promptVersion v4 went live on Jan 10 00:00 UTC (100% of its requests now); volume was flat; the same change is tenant acme."
    );
    // A deploy note for v4 in the windows ends the sentence; one for another version
    // does not.
    let note = |id: i64, version: &str, text: &str| crate::deploy::DeployNote {
        id,
        endpoint_tag: Some("summarize.doc".into()),
        prompt_version: Some(version.into()),
        note: text.into(),
        author: Some("ana".into()),
        time: String::new(),
        time_ms: 9 * day,
    };
    input.deploys = vec![
        note(1, "v4", "longer summaries for enterprise"),
        note(2, "v9", "unrelated"),
    ];
    let noted = explain(&input);
    assert!(
        noted.drivers[0].sentence.ends_with(
            "the same change is tenant acme; after v4: 'longer summaries for enterprise'."
        ),
        "{}",
        noted.drivers[0].sentence
    );
    assert!(noted
        .summary
        .contains("after v4: 'longer summaries for enterprise'"));
    assert_eq!(noted.deploys.len(), 2);
    // The tenant saw the same dollars, and v3/v4 are the cause seen from the side.
    assert_eq!(e.drivers.len(), 1, "{:?}", e.drivers);
    assert_eq!(e.endpoints[0].prompt_versions[0].value, "v4");
    assert!(e.endpoints[0].prompt_versions[0].new_in_window);
}

#[test]
fn retries_explain_a_drop_of_cost_per_request() {
    let mut storm = sums(100, 400_000_000);
    storm.attempts = 250;
    storm.errors = 60;
    let e = endpoint_findings(
        &EndpointInput {
            endpoint: "chat.assist".into(),
            sums: Pair {
                baseline: sums(100, USD),
                current: storm,
            },
            ..Default::default()
        },
        (0, 1),
    );
    assert_eq!(e.retry_ratio.current, Some(1.5));
    assert_eq!(
        e.cause,
        Some(Cause {
            kind: Kind::Retries,
            dimension: "endpointTag".into(),
            value: "chat.assist".into()
        })
    );
}

#[test]
fn a_new_group_is_its_own_kind_of_driver() {
    let e = explain(&two_dims(
        Pair {
            baseline: vec![row("support.reply", 100, USD)],
            current: vec![
                row("support.reply", 100, USD),
                row("agent.plan", 10, 3 * USD),
            ],
        },
        Pair {
            baseline: vec![row("acme", 100, USD)],
            current: vec![row("acme", 100, USD), row("initech", 10, 3 * USD)],
        },
    ));
    let d = &e.drivers[0];
    assert_eq!((d.kind, d.value.as_str()), (Kind::NewGroup, "agent.plan"));
    assert_eq!(
        d.sentence,
        "100% of the rise comes from new endpoint agent.plan, which had no requests in the baseline (10 now, $3.00); the same change is tenant initech."
    );
    assert_eq!(e.dimensions[0].new_usd, Usd(3 * USD));
}

#[test]
fn no_change_no_drivers() {
    let rows = vec![row("a", 10, USD)];
    let e = explain(&two_dims(
        Pair {
            baseline: rows.clone(),
            current: rows.clone(),
        },
        Pair {
            baseline: rows.clone(),
            current: rows,
        },
    ));
    assert!(e.drivers.is_empty());
    assert!(
        e.summary.starts_with("Spend was unchanged at $1.00"),
        "{}",
        e.summary
    );
}
