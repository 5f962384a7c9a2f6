//! `burnrate doctor`: tracking quality (the checks of GET /v1/quality) from the database
//! or a running server (--url), printed from the API's JSON so both paths show the same.

use super::explain::{api_error, window_params, WindowArgs};
use super::remote::RemoteArgs;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde_json::Value;

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub window: WindowArgs,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn doctor(db: &str, args: DoctorArgs) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_millisecond();
    let params = window_params(&args.window, Some(crate::http::quality::DEFAULT_SINCE), now)?;
    let report = match &args.remote.url {
        Some(_) => args.remote.get("/v1/quality", &params).await?,
        None => {
            let mut base = crate::http::quality::quality_query(&params, now).map_err(api_error)?;
            let store = crate::store::open(db)?;
            let result = async {
                let ws = super::workspace_id(store.as_ref(), &args.remote.workspace).await?;
                let settings = crate::settings::load(store.as_ref(), ws).await?;
                settings.privacy().widen_filters(&mut base.filters);
                // No server counted personal ids here: privacy stays null.
                let report =
                    crate::report::quality::quality(store.as_ref(), ws, &base, None).await?;
                anyhow::Ok(serde_json::to_value(report)?)
            }
            .await;
            store.close().await;
            result?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(())
}

/// What each stage means, as the Setup page says it.
pub fn stage_text(stage: &str) -> &'static str {
    match stage {
        "no_events" => "no event yet: send the first one (see the Setup page)",
        "unpriced" => "events arrive, none priced yet",
        "priced" => "priced events arrive; attribution (tenantId, promptVersion) is incomplete",
        "complete" => "attribution complete",
        _ => "unknown",
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The report as people read it: header, checks, lint, per endpoint.
fn text(r: &Value) -> String {
    let score = r["score"]
        .as_u64()
        .map_or("-".to_string(), |s| format!("{s}/100"));
    let mut out = format!(
        "{} .. {}: {} events\nstage: {} ({})\nscore: {score}\n",
        str_of(&r["from"]),
        str_of(&r["to"]),
        r["events"],
        str_of(&r["stage"]),
        stage_text(str_of(&r["stage"])),
    );
    let mut checks = table(&["check", "status", "detail"]);
    for c in r["checks"].as_array().into_iter().flatten() {
        checks.add_row(vec![
            str_of(&c["id"]),
            str_of(&c["status"]),
            str_of(&c["detail"]),
        ]);
    }
    out.push_str(&format!("{checks}\n"));
    let endpoints = r["endpoints"].as_array().cloned().unwrap_or_default();
    if !endpoints.is_empty() {
        let mut t = table(&[
            "endpointTag",
            "events",
            "externalRequestId",
            "tenantId",
            "promptVersion",
            "usage",
            "priced",
        ]);
        for e in &endpoints {
            let share = |name: &str| {
                let s = &e["shares"][name];
                format!("{}/{}", s["with"], s["of"])
            };
            t.add_row(vec![
                str_of(&e["endpointTag"]).to_string(),
                e["events"].to_string(),
                share("externalRequestId"),
                share("tenantId"),
                share("promptVersion"),
                share("usage"),
                share("priced"),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    out
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}
