//! The Slack incoming-webhook body: a readable `text` (the notification fallback) and
//! Block Kit blocks: a header, the evidence, the drivers as a list, the dashboard link.

use super::{truncate, Driver, Notification, NotificationState};
use serde_json::{json, Value};

/// Block Kit limits: header text 150 characters, section text 3000.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
/// More drivers than this make a wall of text; the webhook payload has them all.
const DRIVERS_SHOWN: usize = 10;

pub(super) fn body(n: &Notification) -> Value {
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&headline(n), HEADER_MAX), "emoji": true},
        }),
        mrkdwn_section(&escape(&n.text)),
    ];
    if !n.drivers.is_empty() {
        blocks.push(mrkdwn_section(&drivers_list(&n.drivers)));
    }
    if let Some(link) = &n.link {
        blocks.push(mrkdwn_section(&format!(
            "<{}|Open the view in burnrate>",
            escape(link)
        )));
    }
    json!({ "text": fallback(n), "blocks": blocks })
}

fn mrkdwn_section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}})
}

/// "Firing (critical): Hourly spend 4.2x its baseline", "Resolved: ...".
fn headline(n: &Notification) -> String {
    match n.state {
        NotificationState::Firing => format!("Firing ({}): {}", n.severity.as_str(), n.title),
        NotificationState::Resolved => format!("Resolved: {}", n.title),
        NotificationState::Test => format!("Test: {}", n.title),
        NotificationState::Digest => n.title.clone(),
    }
}

/// What a phone notification or a client without blocks shows.
fn fallback(n: &Notification) -> String {
    let mut text = format!("{}. {}", escape(&headline(n)), escape(&n.text));
    if let Some(link) = &n.link {
        text.push_str(&format!(" <{}|Open in burnrate>", escape(link)));
    }
    truncate(&text, SECTION_MAX)
}

/// "• *tenantId* `acme`: 62.0% of the change. 1,204 requests at $0.031"
fn drivers_list(drivers: &[Driver]) -> String {
    let mut lines = vec!["*Top drivers*".to_string()];
    for d in drivers.iter().take(DRIVERS_SHOWN) {
        let mut line = format!(
            "• *{}* `{}`: {:.1}% of the change",
            escape(&d.dimension),
            escape(&d.value).replace('`', "'"),
            d.share_pct
        );
        if !d.detail.is_empty() {
            line.push_str(&format!(". {}", escape(&d.detail)));
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Slack reads `&`, `<` and `>` as markup (`<!channel>` pings everyone), so text from
/// tenants and endpoints is escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
