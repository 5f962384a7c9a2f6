//! The sentences: each driver told in words (whose change, how it split, the cause
//! inside its endpoint) and the one paragraph that sums the explanation up.

use super::causes::{Driver, EndpointFindings, Kind, MixRow};
use super::split::{change_pct, GroupChange, Pair, Presence, Split, Totals};
use crate::money::Usd;

/// "endpoint summarize.doc", "tenant acme", "promptVersion v4", "team x" (tags).
pub(super) fn label(dimension: &str, value: &str) -> String {
    let word = match dimension {
        "endpointTag" => "endpoint",
        "tenantId" => "tenant",
        "userId" => "user",
        other => other.strip_prefix("tag:").unwrap_or(other),
    };
    format!("{word} {value}")
}

fn pct_text(p: f64) -> String {
    format!("{p:.0}%")
}

fn signed_pct(p: f64) -> String {
    if p >= 0.0 {
        format!("+{p:.0}%")
    } else {
        format!("−{:.0}%", -p)
    }
}

fn signed_usd(u: Usd) -> String {
    if u.0 >= 0 {
        format!("+{}", u.readable())
    } else {
        format!("−{}", Usd(-u.0).readable())
    }
}

/// "rose 2.9x", "rose 12%", "fell 30%", "was flat".
fn moved_words(now: f64, before: f64) -> String {
    if before == 0.0 {
        return if now > 0.0 {
            "rose from zero"
        } else {
            "was flat"
        }
        .into();
    }
    let r = now / before;
    if r >= 2.0 {
        format!("rose {r:.1}x")
    } else if r >= 1.05 {
        format!("rose {:.0}%", (r - 1.0) * 100.0)
    } else if r <= 0.95 {
        format!("fell {:.0}%", (1.0 - r) * 100.0)
    } else {
        "was flat".into()
    }
}

fn volume_words(g: &GroupChange) -> String {
    match g.requests_change_pct {
        Some(p) if p.abs() < 5.0 => "volume was flat".into(),
        Some(p) => format!("volume {}", signed_pct(p)),
        None => "volume new".into(),
    }
}

fn cpr_words(g: &GroupChange) -> String {
    let p = g.cost_per_request;
    match (p.baseline, p.current) {
        (Some(b), Some(c)) => format!(
            "cost/request {} ({} → {})",
            moved_words(c.0 as f64, b.0 as f64),
            b.readable(),
            c.readable()
        ),
        _ => "cost/request n/a".into(),
    }
}

fn share_text(p: Option<f64>) -> String {
    p.map_or("—".into(), |p| pct_text(p * 100.0))
}

/// How the sentence opens: the group's part of the change.
fn lead(dimension: &str, g: &GroupChange, total: i64) -> String {
    let who = match g.presence {
        Presence::New => format!("new {}", label(dimension, &g.value)),
        _ => label(dimension, &g.value),
    };
    let same_way = total != 0 && g.change_usd.0.signum() == total.signum();
    match g.share_of_change_pct {
        Some(p) if same_way => {
            let rise = if total > 0 { "rise" } else { "drop" };
            format!("{} of the {rise} comes from {who}", pct_text(p))
        }
        _ => format!(
            "{who} went {} ({})",
            if g.change_usd.0 > 0 { "up" } else { "down" },
            signed_usd(g.change_usd)
        ),
    }
}

/// The plain sentence of one driver.
pub(super) fn sentence(
    kind: Kind,
    dimension: &str,
    g: &GroupChange,
    f: Option<&EndpointFindings>,
    total: i64,
) -> String {
    let lead = lead(dimension, g, total);
    let tail = match (kind, f) {
        (Kind::NewGroup, _) => format!(
            ", which had no requests in the baseline ({} now, {})",
            g.requests.current,
            crate::money::with_unpriced(g.cost_usd.current, g.unpriced.current)
        ),
        (Kind::Volume, _) if g.presence == Presence::Vanished => format!(
            ", which stopped ({} requests in the baseline)",
            g.requests.baseline
        ),
        (Kind::Volume, _) => format!(
            ", whose volume {} ({} → {} requests); {}",
            moved_words(g.requests.current as f64, g.requests.baseline as f64),
            g.requests.baseline,
            g.requests.current,
            cpr_words(g)
        ),
        (Kind::PromptVersion, Some(f)) => prompt_version_tail(g, f),
        (Kind::ModelMix, Some(f)) => model_mix_tail(g, f),
        (Kind::Retries, Some(f)) => format!(
            ", whose retry ratio went from {} to {} and error share from {} to {}; {} (calls that fail without usage cost nothing, retries count once)",
            share_text(f.retry_ratio.baseline),
            share_text(f.retry_ratio.current),
            share_text(f.error_share.baseline),
            share_text(f.error_share.current),
            cpr_words(g)
        ),
        (Kind::Tokens, Some(f)) => tokens_tail(g, f),
        (Kind::Cache, Some(f)) => format!(
            ", whose cache hit rate went from {} to {}; {}; {}",
            share_text(f.cache_hit_rate.baseline),
            share_text(f.cache_hit_rate.current),
            cpr_words(g),
            volume_words(g)
        ),
        _ => format!(", whose {}; {}", cpr_words(g), volume_words(g)),
    };
    format!("{lead}{tail}.")
}

/// ", whose cost/request rose ... after promptVersion v4 went live on ... (..% of its
/// requests now); volume ...".
fn prompt_version_tail(g: &GroupChange, f: &EndpointFindings) -> String {
    let v = cause_row(&f.prompt_versions, f);
    format!(
        ", whose {} after promptVersion {} went live{} ({} of its requests now); {}",
        cpr_words(g),
        v.map_or("", |v| v.value.as_str()),
        v.and_then(|v| v.first_seen.as_deref())
            .and_then(day_time)
            .map(|t| format!(" on {t}"))
            .unwrap_or_default(),
        share_text(v.and_then(|v| v.share.current)),
        volume_words(g)
    )
}

/// ", whose cost/request rose ... as its traffic moved to model m (a → b of requests);
/// volume ...".
fn model_mix_tail(g: &GroupChange, f: &EndpointFindings) -> String {
    let m = cause_row(&f.models, f);
    format!(
        ", whose {} as its traffic moved to model {} ({} → {} of requests); {}",
        cpr_words(g),
        m.map_or("", |m| m.value.as_str()),
        share_text(m.and_then(|m| m.share.baseline).or(Some(0.0))),
        share_text(m.and_then(|m| m.share.current)),
        volume_words(g)
    )
}

/// ", whose cost/request rose ... with more tokens per request (input +x%, output
/// +y%); volume ...".
fn tokens_tail(g: &GroupChange, f: &EndpointFindings) -> String {
    let rel = |p: &Pair<Option<f64>>| match (p.baseline, p.current) {
        (Some(b), Some(c)) => change_pct(c, b).map_or("n/a".into(), signed_pct),
        _ => "n/a".into(),
    };
    format!(
        ", whose {} with more tokens per request (input {}, output {}); {}",
        cpr_words(g),
        rel(&f.input_tokens_per_request),
        rel(&f.output_tokens_per_request),
        volume_words(g)
    )
}

fn cause_row<'a>(rows: &'a [MixRow], f: &EndpointFindings) -> Option<&'a MixRow> {
    let value = &f.cause.as_ref()?.value;
    rows.iter().find(|r| &r.value == value)
}

/// The one paragraph: the total change between the windows' totals (in percent:
/// `spend_change_pct`), how it splits (`effects`), then the leading drivers.
pub(super) fn summary(
    b: &Totals,
    c: &Totals,
    spend_change_pct: Option<f64>,
    effects: Split,
    drivers: &[Driver],
) -> String {
    if b.requests == 0 && c.requests == 0 {
        return "No requests in either window.".into();
    }
    let change = c.cost_usd.0 - b.cost_usd.0;
    let mut out = if change == 0 {
        format!("Spend was unchanged at {}", c.cost_usd.readable())
    } else {
        format!(
            "Spend {} from {} to {}{}",
            if change > 0 { "rose" } else { "fell" },
            b.cost_usd.readable(),
            c.cost_usd.readable(),
            spend_change_pct
                .map(|p| format!(" ({})", signed_pct(p)))
                .unwrap_or_default()
        )
    };
    out.push_str(&format!(
        " in {} against {}; requests {} → {}; volume effect {}, cost/request effect {}.",
        span(&c.from, &c.to),
        span(&b.from, &b.to),
        crate::money::group_digits(&b.requests.to_string()),
        crate::money::group_digits(&c.requests.to_string()),
        signed_usd(effects.volume_usd),
        signed_usd(effects.cost_per_request_usd)
    ));
    for d in drivers.iter().take(3) {
        out.push(' ');
        out.push_str(&capitalize(&d.sentence));
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `Nov 18 06:00 – Nov 25 06:00 UTC`.
fn span(from: &str, to: &str) -> String {
    let short = |t: &str| day_time(t).map(|t| t.trim_end_matches(" UTC").to_string());
    format!(
        "{} – {} UTC",
        short(from).unwrap_or_default(),
        short(to).unwrap_or_default()
    )
}

/// `Nov 20 14:00 UTC` from RFC 3339 text.
fn day_time(text: &str) -> Option<String> {
    let t: jiff::Timestamp = text.parse().ok()?;
    Some(
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%b %-d %H:%M UTC")
            .to_string(),
    )
}
