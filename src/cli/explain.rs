//! `burnrate explain` and `burnrate gate`: the same URL parameters as GET /v1/explain and
//! /v1/gate, answered from the database or by a running server (--url), shown from the
//! API's JSON so both paths print the same thing.

use super::remote::RemoteArgs;
use super::{parse_since, workspace_id};
use crate::store::Store;
use anyhow::bail;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, ContentArrangement, Table};
use serde_json::Value;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct WindowArgs {
    /// The window ending now: 30m, 24h, 7d, 4w (at most 3 years; default 7d).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// Window start, RFC 3339 (with --to).
    #[arg(long)]
    pub from: Option<String>,
    /// Window end, RFC 3339 (default now).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, default_value = "prod")]
    pub env: String,
    #[arg(long, default_value = "real")]
    pub data_mode: String,
}

#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub window: WindowArgs,
    /// The baseline: `previous` (the window before, of equal length; the default).
    #[arg(long, value_parser = ["previous"], conflicts_with_all = ["baseline_from", "baseline_to"])]
    pub vs: Option<String>,
    /// Baseline window start, RFC 3339.
    #[arg(long)]
    pub baseline_from: Option<String>,
    /// Baseline window end, RFC 3339.
    #[arg(long)]
    pub baseline_to: Option<String>,
    /// Dimensions to split by, comma-separated (at most 4).
    #[arg(long, default_value = crate::report::explain::DEFAULT_BY)]
    pub by: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Args)]
pub struct GateArgs {
    #[arg(long)]
    pub endpoint_tag: String,
    /// The prompt version under test.
    #[arg(long)]
    pub candidate: String,
    /// The version to compare with (default: the one first seen before the candidate).
    #[arg(long)]
    pub baseline: Option<String>,
    /// cost_per_request, input_tokens_per_request, output_tokens_per_request or latency.
    #[arg(long, default_value = "cost_per_request")]
    pub metric: String,
    #[arg(long, default_value_t = crate::gate::DEFAULT_MAX_INCREASE_PCT, allow_negative_numbers = true)]
    pub max_increase_pct: f64,
    /// Requests of each version needed before a verdict.
    #[arg(long, default_value_t = crate::gate::DEFAULT_MIN_SAMPLES)]
    pub min_samples: usize,
    #[command(flatten)]
    pub window: WindowArgs,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The gate's exit code when it could not run at all (bad input, server unreachable):
/// distinct from pass (0), fail (1) and not enough data (2).
pub const GATE_ERROR: u8 = 3;

pub(super) fn window_params(
    w: &WindowArgs,
    default_since: Option<&str>,
    now: i64,
) -> anyhow::Result<HashMap<String, String>> {
    let mut p = HashMap::new();
    let since = w
        .since
        .as_deref()
        .or(default_since.filter(|_| w.from.is_none()));
    if let Some(since) = since {
        // The API reads since= with the same parser as top's --since.
        parse_since(since)?;
        p.insert("since".into(), since.to_string());
        p.insert("to".into(), crate::report::rfc3339(now));
    }
    for (name, value) in [("from", &w.from), ("to", &w.to)] {
        if let Some(v) = value {
            p.insert(name.into(), v.clone());
        }
    }
    p.insert("environment".into(), w.env.clone());
    p.insert("dataMode".into(), w.data_mode.clone());
    Ok(p)
}

/// The API's error as one line: `by unknown dimension "x"; ...`.
pub(super) fn api_error(e: crate::http::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}

async fn open(url: &str, workspace: &str) -> anyhow::Result<(Arc<dyn Store>, i64)> {
    let store = crate::store::open(url)?;
    let ws = workspace_id(store.as_ref(), workspace).await?;
    Ok((store, ws))
}

pub async fn explain(db: &str, args: ExplainArgs) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_millisecond();
    let mut params = window_params(&args.window, Some("7d"), now)?;
    params.insert("by".into(), args.by.clone());
    for (name, value) in [
        ("baselineFrom", &args.baseline_from),
        ("baselineTo", &args.baseline_to),
    ] {
        if let Some(v) = value {
            params.insert(name.into(), v.clone());
        }
    }
    let answer = match &args.remote.url {
        Some(_) => args.remote.get("/v1/explain", &params).await?,
        None => {
            let mut request = crate::http::api::explain_request(&params, now).map_err(api_error)?;
            let (store, ws) = open(db, &args.remote.workspace).await?;
            let settings = crate::settings::load(store.as_ref(), ws).await?;
            settings
                .privacy()
                .widen_filters(&mut request.window.filters);
            let result = crate::report::explain::explain(store.as_ref(), ws, &request).await;
            store.close().await;
            serde_json::to_value(result.map_err(|e| anyhow::anyhow!("{e}"))?)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_explanation(&answer);
    }
    Ok(())
}

/// Money from the API's exact decimal, as people read it.
fn money(v: &Value) -> String {
    let text = v.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("−", rest),
        None => ("", text.as_str()),
    };
    match crate::money::Usd::parse(digits) {
        Ok(u) => format!("{sign}{}", u.readable()),
        Err(_) => "—".into(),
    }
}

fn signed_money(v: &Value) -> String {
    let m = money(v);
    if m.starts_with('−') || m == "$0.00" || m == "—" {
        m
    } else {
        format!("+{m}")
    }
}

fn pct(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |p| format!("{p:+.1}%"))
}

fn ratio(v: &Value) -> String {
    v.as_f64()
        .map_or("—".into(), |r| format!("{:.1}%", r * 100.0))
}

fn number(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |n| format!("{n:.0}"))
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    if t.width().is_none() {
        t.set_width(120);
    }
    t
}

fn right(t: &mut Table, columns: std::ops::Range<usize>) {
    for i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn print_explanation(e: &Value) {
    println!("{}", e["summary"].as_str().unwrap_or(""));
    println!();
    let (b, c) = (&e["baseline"], &e["current"]);
    let mut t = table(&["", "baseline", "current"]);
    type Show = fn(&Value) -> String;
    let rows: [(&str, Show, &str); 6] = [
        ("spend", money, "costUsd"),
        ("requests", number, "requests"),
        ("cost / request", money, "costPerRequest"),
        ("tokens / request", number, "tokensPerRequest"),
        ("retry ratio", ratio, "retryRatio"),
        ("cache hit rate", ratio, "cacheHitRate"),
    ];
    for (name, show, key) in rows {
        t.add_row(vec![name.to_string(), show(&b[key]), show(&c[key])]);
    }
    right(&mut t, 1..3);
    println!("{t}");
    let drivers = e["drivers"].as_array().cloned().unwrap_or_default();
    if drivers.is_empty() {
        println!("no single group explains a notable part of the change");
    } else {
        let mut t = table(&["#", "kind", "what", "contribution", "share", "finding"]);
        for (i, d) in drivers.iter().enumerate() {
            let what = match d["endpointTag"].as_str() {
                Some(ep) => format!("{}={} on {ep}", s(&d["dimension"]), s(&d["value"])),
                None => format!("{}={}", s(&d["dimension"]), s(&d["value"])),
            };
            t.add_row(vec![
                (i + 1).to_string(),
                s(&d["kind"]),
                what,
                signed_money(&d["contributionUsd"]),
                d["contributionPct"]
                    .as_f64()
                    .map_or("—".into(), |p| format!("{p:.0}%")),
                s(&d["sentence"]),
            ]);
        }
        right(&mut t, 3..5);
        println!("{t}");
    }
    for d in e["dimensions"].as_array().into_iter().flatten() {
        println!(
            "{}: volume {}, cost/request {}, new {}, vanished {}",
            s(&d["dimension"]),
            signed_money(&d["volumeUsd"]),
            signed_money(&d["costPerRequestUsd"]),
            signed_money(&d["newUsd"]),
            signed_money(&d["vanishedUsd"])
        );
        let mut t = table(&[
            "value", "baseline", "current", "change", "volume", "cost/req", "share", "requests",
        ]);
        for g in d["groups"].as_array().into_iter().flatten().take(5) {
            t.add_row(vec![
                format!(
                    "{}{}",
                    s(&g["value"]),
                    match s(&g["presence"]).as_str() {
                        "new" => " (new)",
                        "vanished" => " (gone)",
                        _ => "",
                    }
                ),
                money(&g["costUsd"]["baseline"]),
                money(&g["costUsd"]["current"]),
                signed_money(&g["changeUsd"]),
                signed_money(&g["volumeUsd"]),
                signed_money(&g["costPerRequestUsd"]),
                g["shareOfChangePct"]
                    .as_f64()
                    .map_or("—".into(), |p| format!("{p:.0}%")),
                pct(&g["requestsChangePct"]),
            ]);
        }
        right(&mut t, 1..8);
        println!("{t}");
    }
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Run the gate; the exit code is the verdict's (0 pass, 1 fail, 2 not enough data),
/// or GATE_ERROR when it could not run.
pub async fn gate(db: &str, args: GateArgs) -> ExitCode {
    match run_gate(db, &args).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(GATE_ERROR)
        }
    }
}

async fn run_gate(db: &str, args: &GateArgs) -> anyhow::Result<u8> {
    let now = jiff::Timestamp::now().as_millisecond();
    let mut params = window_params(&args.window, None, now)?;
    params.insert("endpointTag".into(), args.endpoint_tag.clone());
    params.insert("candidate".into(), args.candidate.clone());
    if let Some(b) = &args.baseline {
        params.insert("baseline".into(), b.clone());
    }
    params.insert("metric".into(), args.metric.clone());
    params.insert("maxIncreasePct".into(), args.max_increase_pct.to_string());
    params.insert("minSamples".into(), args.min_samples.to_string());
    let answer = match &args.remote.url {
        Some(_) => args.remote.get("/v1/gate", &params).await?,
        None => {
            let mut request = crate::http::api::gate_request(&params, now).map_err(api_error)?;
            let (store, ws) = open(db, &args.remote.workspace).await?;
            let settings = crate::settings::load(store.as_ref(), ws).await?;
            settings
                .privacy()
                .widen_filters(&mut request.window.filters);
            let result = crate::report::explain::gate(store.as_ref(), ws, &request).await;
            store.close().await;
            serde_json::to_value(result.map_err(|e| anyhow::anyhow!("{e}"))?)?
        }
    };
    let code = match answer["verdict"].as_str() {
        Some("pass") => 0,
        Some("fail") => 1,
        Some("not_enough_data") => 2,
        _ => bail!("the answer has no verdict"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_gate(&answer);
    }
    Ok(code)
}

fn print_gate(g: &Value) {
    println!(
        "{}: {} vs {} on {} ({})",
        s(&g["verdict"]).to_uppercase().replace('_', " "),
        s(&g["candidateVersion"]),
        g["baselineVersion"].as_str().unwrap_or("no baseline"),
        s(&g["endpointTag"]),
        s(&g["metric"])
    );
    println!("{}", s(&g["reason"]));
    let mean = |v: &Value| {
        if v.get("meanUsd").is_some() {
            money(&v["meanUsd"])
        } else {
            v["mean"].as_f64().map_or("—".into(), |m| format!("{m:.1}"))
        }
    };
    let mut t = table(&["version", "requests", "mean"]);
    for (role, name) in [
        ("candidate", "candidateVersion"),
        ("baseline", "baselineVersion"),
    ] {
        t.add_row(vec![
            format!("{} ({role})", g[name].as_str().unwrap_or("-")),
            s(&g[role]["requests"]),
            mean(&g[role]),
        ]);
    }
    right(&mut t, 1..3);
    println!("{t}");
    let interval = g["intervalPct"]
        .as_array()
        .map(|i| format!("{} .. {}", pct(&i[0]), pct(&i[1])));
    println!(
        "increase {} (95% interval {}), limit {}%; {} .. {}",
        pct(&g["estimatePct"]),
        interval.unwrap_or_else(|| "—".into()),
        g["maxIncreasePct"],
        s(&g["from"]),
        s(&g["to"])
    );
    println!("rule: {}", s(&g["rule"]));
}
