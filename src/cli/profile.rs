//! The cardinality flags `burnrate demo` and `burnrate-bench` share: `--profile small`
//! (the demo's story) or `--profile realistic`, whose numbers the other flags change.

use crate::demo::profile::Profile;
use anyhow::bail;
use clap::Args;

#[derive(Args, Clone, Default)]
pub struct ProfileArgs {
    /// small: the demo's story (40 tenants, 600 users, the summarize_v4 incident).
    /// realistic: 5,000 skewed tenants, 200,000 users, 60 endpoints, 300 prompt
    /// versions, 12 priced models, 3 tag keys, 3% retries, 10% of calls up to 2 days
    /// late, in arrival order. The flags below change the realistic profile's numbers.
    #[arg(long, value_parser = ["small", "realistic"])]
    pub profile: Option<String>,
    #[arg(long)]
    pub tenants: Option<u32>,
    /// Users, each in one tenant (at least --tenants).
    #[arg(long)]
    pub users: Option<u32>,
    #[arg(long)]
    pub endpoints: Option<u32>,
    /// Prompt versions, spread over the endpoints and rolled out one after another.
    #[arg(long)]
    pub prompt_versions: Option<u32>,
    /// Priced models (at most 16); the unknown self-hosted model comes on top.
    #[arg(long)]
    pub models: Option<u32>,
    /// Tag keys on every event (team, region, plan, ...; at most 10).
    #[arg(long)]
    pub tag_keys: Option<u32>,
    /// Share of calls retried with the same externalRequestId (0 to 1).
    #[arg(long)]
    pub retry_share: Option<f64>,
    /// Share of calls that arrive after newer ones (0 to 1).
    #[arg(long)]
    pub late_share: Option<f64>,
    /// How late a late call can be: 2d, 36h, ...
    #[arg(long)]
    pub max_lateness: Option<String>,
}

impl ProfileArgs {
    /// The profile to generate; `None` is the small demo. `default` applies when
    /// --profile is not given.
    pub fn resolve(&self, default: &str) -> anyhow::Result<Option<Profile>> {
        let name = self.profile.as_deref().unwrap_or(default);
        if name == "small" {
            if self.has_overrides() {
                bail!("--profile small is the fixed demo story; the cardinality flags need --profile realistic");
            }
            return Ok(None);
        }
        let base = Profile::realistic();
        let max_late_ms = match &self.max_lateness {
            Some(text) => crate::window::parse_since(text)
                .map_err(|e| anyhow::anyhow!("--max-lateness {e}"))?,
            None => base.max_late_ms,
        };
        let profile = Profile {
            tenants: self.tenants.unwrap_or(base.tenants),
            users: self.users.unwrap_or(base.users),
            endpoints: self.endpoints.unwrap_or(base.endpoints),
            prompt_versions: self.prompt_versions.unwrap_or(base.prompt_versions),
            models: self.models.unwrap_or(base.models),
            tag_keys: self.tag_keys.unwrap_or(base.tag_keys),
            retry_share: self.retry_share.unwrap_or(base.retry_share),
            late_share: self.late_share.unwrap_or(base.late_share),
            max_late_ms,
        };
        profile.check().map_err(anyhow::Error::msg)?;
        Ok(Some(profile))
    }

    fn has_overrides(&self) -> bool {
        let counts = [
            self.tenants,
            self.users,
            self.endpoints,
            self.prompt_versions,
            self.models,
            self.tag_keys,
        ];
        counts.iter().any(Option::is_some)
            || self.retry_share.is_some()
            || self.late_share.is_some()
            || self.max_lateness.is_some()
    }

    /// The same choice as `burnrate demo` flags, for a child process; `default` fills
    /// in a missing --profile.
    pub fn to_args(&self, default: &str) -> Vec<String> {
        let mut args = vec![
            "--profile".to_string(),
            self.profile.as_deref().unwrap_or(default).to_string(),
        ];
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                args.extend([format!("--{name}"), v]);
            }
        };
        let text = |v: Option<u32>| v.map(|n| n.to_string());
        flag("tenants", text(self.tenants));
        flag("users", text(self.users));
        flag("endpoints", text(self.endpoints));
        flag("prompt-versions", text(self.prompt_versions));
        flag("models", text(self.models));
        flag("tag-keys", text(self.tag_keys));
        flag("retry-share", self.retry_share.map(|v| v.to_string()));
        flag("late-share", self.late_share.map(|v| v.to_string()));
        flag("max-lateness", self.max_lateness.clone());
        args
    }
}
