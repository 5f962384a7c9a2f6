//! Tracking quality (pure): how much of a workspace's traffic carries what attribution
//! needs (a stable externalRequestId, tenantId, promptVersion, usage, a price), the
//! naming lint of the endpointTag taxonomy, the checks, a score and the Setup stage.
//! `report::quality` reads the counts through the aggregate query; GET /v1/quality,
//! `burnrate doctor` and the Setup page show this same report (docs/quality.md).

use serde::Serialize;
use std::collections::BTreeMap;

/// A share at or above this passes its check; tenantId and promptVersion shares at or
/// above it make attribution complete (the Setup page's last stage).
pub const TARGET: f64 = 0.9;
/// Below this a share's check fails (between it and TARGET it warns).
pub const FAIL_BELOW: f64 = 0.5;
/// High cardinality: at least this many distinct endpoint tags in the window ...
pub const MANY_TAGS: usize = 50;
/// ... of which at least half have at most this many events.
pub const RARE_EVENTS: u64 = 2;
/// Score points taken per lint finding, and at most in all.
pub const LINT_PENALTY: u64 = 5;
pub const MAX_LINT_PENALTY: u64 = 25;

/// One group's counts: its events and how many of them lack each thing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub idless: u64,
    pub no_tenant: u64,
    pub unversioned: u64,
    pub usage_missing: u64,
    pub unpriced: u64,
}

/// A per-key tally of unknown event fields (all time: the store counts them per key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyFields {
    pub id: i64,
    pub prefix: String,
    pub name: Option<String>,
    pub unknown_fields: u64,
    pub last_unknown_field: Option<String>,
}

/// Ids and tag values that looked personal, counted by the server since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PrivacyCounts {
    pub pseudonymized: u64,
    pub rejected: u64,
}

/// What the report is built from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub from: String,
    pub to: String,
    pub total: Counts,
    /// Per endpointTag, most events first.
    pub endpoints: Vec<(String, Counts)>,
    /// Endpoint tags the read's limit left out (they count in `total`).
    pub endpoints_cut: usize,
    pub keys: Vec<KeyFields>,
    /// None when no server counted them (the CLI reading a store file).
    pub privacy: Option<PrivacyCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    /// Events that have it.
    pub with: u64,
    pub of: u64,
    /// `with / of`; null without events.
    pub share: Option<f64>,
}

impl Share {
    fn of(events: u64, lacking: u64) -> Share {
        let with = events.saturating_sub(lacking);
        Share {
            with,
            of: events,
            share: (events > 0).then(|| with as f64 / events as f64),
        }
    }
}

/// The five shares, named as the event contract names what they measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shares {
    pub external_request_id: Share,
    pub tenant_id: Share,
    pub prompt_version: Share,
    pub usage: Share,
    pub priced: Share,
}

impl Shares {
    pub fn of(c: &Counts) -> Shares {
        Shares {
            external_request_id: Share::of(c.events, c.idless),
            tenant_id: Share::of(c.events, c.no_tenant),
            prompt_version: Share::of(c.events, c.unversioned),
            usage: Share::of(c.events, c.usage_missing),
            priced: Share::of(c.events, c.unpriced),
        }
    }

    fn all(&self) -> [(&'static str, Share); 5] {
        [
            ("externalRequestId", self.external_request_id),
            ("tenantId", self.tenant_id),
            ("promptVersion", self.prompt_version),
            ("usage", self.usage),
            ("priced", self.priced),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointQuality {
    pub endpoint_tag: String,
    pub events: u64,
    pub shares: Shares,
}

/// Endpoint tags that differ only in case and separators (`support.reply`,
/// `Support_Reply`, `supportReply`): probably one feature under several spellings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spelling {
    pub normalized: String,
    /// Each spelling with its events, most events first.
    pub tags: Vec<TagCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagCount {
    pub endpoint_tag: String,
    pub events: u64,
}

/// An endpoint tag with an id inside: one tag per request or per object, not a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdInTag {
    pub endpoint_tag: String,
    /// "a UUID", "a long hex run", "a run of digits".
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cardinality {
    pub distinct: usize,
    /// Tags with at most RARE_EVENTS events.
    pub rare: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lint {
    pub spellings: Vec<Spelling>,
    pub ids_in_tags: Vec<IdInTag>,
    /// Set when many distinct tags each have few events.
    pub high_cardinality: Option<Cardinality>,
}

impl Lint {
    fn findings(&self) -> u64 {
        (self.spellings.len() + self.ids_in_tags.len() + self.high_cardinality.is_some() as usize)
            as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub detail: String,
}

/// Where a workspace is on the way the Setup page walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// No event in the window.
    NoEvents,
    /// Events, none of them priced.
    Unpriced,
    /// At least one priced event; tenantId or promptVersion below TARGET.
    Priced,
    /// tenantId and promptVersion shares at or above TARGET.
    Complete,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub from: String,
    pub to: String,
    pub events: u64,
    pub stage: Stage,
    /// 0-100: the mean of the five shares, less LINT_PENALTY per lint finding (at most
    /// MAX_LINT_PENALTY); null without events.
    pub score: Option<u64>,
    pub shares: Shares,
    pub checks: Vec<Check>,
    pub endpoints: Vec<EndpointQuality>,
    pub endpoints_cut: usize,
    pub keys: Vec<KeyFields>,
    pub privacy: Option<PrivacyCounts>,
    pub lint: Lint,
}

/// The whole report from its counts.
pub fn report(inputs: Inputs) -> Report {
    let shares = Shares::of(&inputs.total);
    let lint = lint(&inputs.endpoints, inputs.endpoints_cut);
    let checks = checks(&shares, &inputs, &lint);
    Report {
        events: inputs.total.events,
        stage: stage(&inputs.total, &shares),
        score: score(&inputs.total, &lint),
        shares,
        checks,
        endpoints: inputs
            .endpoints
            .iter()
            .map(|(tag, c)| EndpointQuality {
                endpoint_tag: tag.clone(),
                events: c.events,
                shares: Shares::of(c),
            })
            .collect(),
        endpoints_cut: inputs.endpoints_cut,
        keys: inputs.keys,
        privacy: inputs.privacy,
        lint,
        from: inputs.from,
        to: inputs.to,
    }
}

fn stage(total: &Counts, shares: &Shares) -> Stage {
    let at_target = |s: Share| s.share.is_some_and(|v| v >= TARGET);
    if total.events == 0 {
        Stage::NoEvents
    } else if shares.priced.with == 0 {
        Stage::Unpriced
    } else if at_target(shares.tenant_id) && at_target(shares.prompt_version) {
        Stage::Complete
    } else {
        Stage::Priced
    }
}

/// Integer arithmetic, so the same counts always give the same score.
fn score(total: &Counts, lint: &Lint) -> Option<u64> {
    if total.events == 0 {
        return None;
    }
    let s = Shares::of(total);
    let with: u64 = s.all().iter().map(|(_, s)| s.with).sum();
    let possible = 5 * total.events;
    // Rounded half up: (200 w + p) / 2p = round(100 w / p).
    let mean = (200 * with as u128 + possible as u128) / (2 * possible as u128);
    let penalty = (lint.findings() * LINT_PENALTY).min(MAX_LINT_PENALTY);
    Some((mean as u64).saturating_sub(penalty))
}

fn share_status(share: Option<f64>) -> Status {
    match share {
        Some(v) if v >= TARGET => Status::Pass,
        Some(v) if v >= FAIL_BELOW => Status::Warn,
        _ => Status::Fail,
    }
}

fn pct(share: Option<f64>) -> String {
    share.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn checks(shares: &Shares, inputs: &Inputs, lint: &Lint) -> Vec<Check> {
    let what = [
        "carry a stable externalRequestId (retries dedupe, guard reservations settle)",
        "carry a tenantId",
        "carry a promptVersion",
        "report usage (tokens, images or a cost)",
        "are priced",
    ];
    let mut out: Vec<Check> = shares
        .all()
        .iter()
        .zip(what)
        .map(|((id, s), what)| Check {
            id,
            status: share_status(s.share),
            detail: format!("{} of {} events ({}) {what}", s.with, s.of, pct(s.share)),
        })
        .collect();
    out.push(unknown_fields_check(&inputs.keys));
    if let Some(p) = inputs.privacy {
        out.push(Check {
            id: "personalIds",
            status: if p.rejected > 0 {
                Status::Warn
            } else {
                Status::Pass
            },
            detail: format!(
                "{} ids pseudonymized, {} rejected as personal data since the server started",
                p.pseudonymized, p.rejected
            ),
        });
    }
    out.extend(lint_checks(lint));
    out
}

fn unknown_fields_check(keys: &[KeyFields]) -> Check {
    let senders: Vec<String> = keys
        .iter()
        .filter(|k| k.unknown_fields > 0)
        .map(|k| {
            let last = k.last_unknown_field.as_deref().unwrap_or("?");
            format!("key {} sent {} (last: {last})", k.prefix, k.unknown_fields)
        })
        .collect();
    Check {
        id: "unknownFields",
        status: if senders.is_empty() {
            Status::Pass
        } else {
            Status::Warn
        },
        detail: if senders.is_empty() {
            "no key sent unknown event fields".into()
        } else {
            format!("unknown event fields (typos?): {}", senders.join("; "))
        },
    }
}

fn lint_checks(lint: &Lint) -> Vec<Check> {
    let status = |found: bool| if found { Status::Warn } else { Status::Pass };
    let spellings: Vec<String> = lint
        .spellings
        .iter()
        .map(|s| {
            let tags: Vec<&str> = s.tags.iter().map(|t| t.endpoint_tag.as_str()).collect();
            tags.join(" / ")
        })
        .collect();
    let ids: Vec<String> = lint
        .ids_in_tags
        .iter()
        .map(|i| format!("{} ({})", i.endpoint_tag, i.reason))
        .collect();
    vec![
        Check {
            id: "endpointSpellings",
            status: status(!spellings.is_empty()),
            detail: if spellings.is_empty() {
                "no endpoint tag is spelled several ways".into()
            } else {
                format!("one feature, several spellings: {}", spellings.join("; "))
            },
        },
        Check {
            id: "idsInEndpointTags",
            status: status(!ids.is_empty()),
            detail: if ids.is_empty() {
                "no endpoint tag holds an id".into()
            } else {
                format!("endpoint tags holding an id: {}", ids.join("; "))
            },
        },
        Check {
            id: "endpointCardinality",
            status: status(lint.high_cardinality.is_some()),
            detail: match lint.high_cardinality {
                Some(c) => format!(
                    "{} distinct endpoint tags, {} of them with at most {RARE_EVENTS} events: tag features, not requests",
                    c.distinct, c.rare
                ),
                None => "endpoint tags are few enough per event".into(),
            },
        },
    ]
}

/// The naming lint over the window's endpoint tags (`cut` more were not listed).
pub fn lint(endpoints: &[(String, Counts)], cut: usize) -> Lint {
    let mut groups: BTreeMap<String, Vec<TagCount>> = BTreeMap::new();
    for (tag, c) in endpoints {
        groups.entry(normalize(tag)).or_default().push(TagCount {
            endpoint_tag: tag.clone(),
            events: c.events,
        });
    }
    let spellings = groups
        .into_iter()
        .filter(|(_, tags)| tags.len() > 1)
        .map(|(normalized, mut tags)| {
            tags.sort_by(|a, b| {
                b.events
                    .cmp(&a.events)
                    .then(a.endpoint_tag.cmp(&b.endpoint_tag))
            });
            Spelling { normalized, tags }
        })
        .collect();
    let ids_in_tags = endpoints
        .iter()
        .filter_map(|(tag, _)| {
            id_inside(tag).map(|reason| IdInTag {
                endpoint_tag: tag.clone(),
                reason,
            })
        })
        .collect();
    let distinct = endpoints.len() + cut;
    // Cut tags are the ones with the fewest events: count them as rare.
    let rare = endpoints
        .iter()
        .filter(|(_, c)| c.events <= RARE_EVENTS)
        .count()
        + cut;
    let high_cardinality =
        (distinct >= MANY_TAGS && 2 * rare >= distinct).then_some(Cardinality { distinct, rare });
    Lint {
        spellings,
        ids_in_tags,
        high_cardinality,
    }
}

/// One spelling of a tag: camelCase split into words, lower case, every run of
/// separators (`.`, `_`, `-`, `/`, `:`, space) one dot, none at the ends.
pub fn normalize(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len() + 4);
    let mut prev_lower = false;
    for ch in tag.chars() {
        if matches!(ch, '.' | '_' | '-' | '/' | ':' | ' ') {
            if !out.is_empty() && !out.ends_with('.') {
                out.push('.');
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower {
            out.push('.');
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        out.extend(ch.to_lowercase());
    }
    out.trim_end_matches('.').to_string()
}

/// Why `tag` looks like it holds an id, if it does: a UUID, a run of 12+ hex characters
/// with a digit in it (words such as `facade` have none), or 5+ digits in a row.
pub fn id_inside(tag: &str) -> Option<&'static str> {
    let b = tag.as_bytes();
    if (0..b.len().saturating_sub(35)).any(|i| is_uuid(&b[i..i + 36])) {
        return Some("a UUID");
    }
    let hex_run = runs(b, |c| c.is_ascii_hexdigit())
        .any(|run| run.len() >= 12 && run.iter().any(u8::is_ascii_digit));
    if hex_run {
        return Some("a long hex run");
    }
    if runs(b, |c| c.is_ascii_digit()).any(|run| run.len() >= 5) {
        return Some("a run of digits");
    }
    None
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The maximal runs of bytes matching `keep`.
fn runs(b: &[u8], keep: fn(&u8) -> bool) -> impl Iterator<Item = &[u8]> {
    b.split(move |c| !keep(c)).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(events: u64) -> Counts {
        Counts {
            events,
            ..Default::default()
        }
    }

    #[test]
    fn spellings_differing_in_case_and_separators_group_as_one_feature() {
        for (a, b) in [
            ("support.reply", "Support_Reply"),
            ("support.reply", "support-reply"),
            ("support.reply", "supportReply"),
            ("support.reply", "SUPPORT.REPLY"),
            ("search/v2", "search_v2"),
        ] {
            assert_eq!(normalize(a), normalize(b), "{a} vs {b}");
        }
        assert_eq!(normalize("Support__Reply."), "support.reply");
        assert_ne!(normalize("support.reply"), normalize("support.replies"));
        let lint = lint(
            &[
                ("support.reply".into(), counts(5)),
                ("Support_Reply".into(), counts(2)),
                ("supportReply".into(), counts(1)),
                ("billing".into(), counts(9)),
            ],
            0,
        );
        assert_eq!(lint.spellings.len(), 1);
        let tags: Vec<(&str, u64)> = lint.spellings[0]
            .tags
            .iter()
            .map(|t| (t.endpoint_tag.as_str(), t.events))
            .collect();
        assert_eq!(
            tags,
            [
                ("support.reply", 5),
                ("Support_Reply", 2),
                ("supportReply", 1)
            ]
        );
        assert_eq!(lint.spellings[0].normalized, "support.reply");
    }

    #[test]
    fn ids_inside_endpoint_tags_are_found_and_words_are_not() {
        assert_eq!(
            id_inside("ticket.5f0c2a9e-3b1d-4c8e-9a7f-0123456789ab.reply"),
            Some("a UUID")
        );
        assert_eq!(id_inside("doc_9f86d081884c7d65"), Some("a long hex run"));
        assert_eq!(id_inside("order.1234567"), Some("a run of digits"));
        for fine in [
            "support.reply",
            "summarize_v4",
            "gpt4o.chat",
            "facade.decade",
            "year_2026",
            "",
        ] {
            assert_eq!(id_inside(fine), None, "{fine}");
        }
    }

    #[test]
    fn many_tags_with_few_events_each_are_high_cardinality() {
        let tags = |n: usize, events: u64| -> Vec<(String, Counts)> {
            (0..n).map(|i| (format!("t{i}x"), counts(events))).collect()
        };
        assert_eq!(
            lint(&tags(60, 1), 0).high_cardinality,
            Some(Cardinality {
                distinct: 60,
                rare: 60
            })
        );
        assert_eq!(lint(&tags(60, 3), 0).high_cardinality, None);
        assert_eq!(lint(&tags(49, 1), 0).high_cardinality, None);
        // Tags a limit cut off count as distinct and rare.
        assert_eq!(
            lint(&tags(10, 100), 45).high_cardinality,
            Some(Cardinality {
                distinct: 55,
                rare: 45
            })
        );
    }

    #[test]
    fn stage_walks_from_no_events_to_complete() {
        let stage_of = |c: Counts| {
            report(Inputs {
                total: c,
                ..Default::default()
            })
            .stage
        };
        assert_eq!(stage_of(counts(0)), Stage::NoEvents);
        let all_unpriced = Counts {
            unpriced: 3,
            ..counts(3)
        };
        assert_eq!(stage_of(all_unpriced), Stage::Unpriced);
        let no_tenant = Counts {
            no_tenant: 2,
            ..counts(10)
        };
        assert_eq!(stage_of(no_tenant), Stage::Priced);
        let one_missing = Counts {
            no_tenant: 1,
            unversioned: 1,
            ..counts(10)
        };
        assert_eq!(stage_of(one_missing), Stage::Complete);
    }

    #[test]
    fn score_is_the_rounded_mean_share_less_lint_findings() {
        let c = Counts {
            events: 10,
            idless: 3,
            no_tenant: 2,
            unversioned: 0,
            usage_missing: 0,
            unpriced: 1,
        };
        // (7 + 8 + 10 + 10 + 9) / 50 = 88%.
        let clean = report(Inputs {
            total: c,
            ..Default::default()
        });
        assert_eq!(clean.score, Some(88));
        let linted = report(Inputs {
            total: c,
            endpoints: vec![
                ("support.reply".into(), counts(5)),
                ("Support_Reply".into(), counts(5)),
            ],
            ..Default::default()
        });
        assert_eq!(linted.score, Some(83));
        assert_eq!(report(Inputs::default()).score, None);
    }
}
