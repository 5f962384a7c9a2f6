//! `burnrate plans`: which plan each tenant is on, for the per-plan limits of a budget
//! for each tenant (the same store objects as `/v1/plans`).

use crate::budget::service::{BudgetError, Budgets};
use crate::store::Store;
use clap::Subcommand;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum PlanCommand {
    /// How many tenants are on each plan.
    List {
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// One tenant's plan.
    Show {
        tenant: String,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Put a tenant on a plan (without --from: its first plan since always, a change
    /// from now).
    Set {
        tenant: String,
        plan: String,
        /// When the plan takes effect: an RFC 3339 time or a UTC day YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Take a tenant off its plan (the budget's default limit applies again).
    Unset {
        tenant: String,
        /// When it takes effect: an RFC 3339 time or a UTC day YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// A tenant's plan changes, oldest first, and its plan now.
    History {
        tenant: String,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Import `tenantId,plan` lines (a header line first; an empty plan takes a tenant
    /// off its plan). One bad line imports nothing.
    Import {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

pub async fn plans(store: Arc<dyn Store>, cmd: PlanCommand) -> anyhow::Result<()> {
    let budgets = Budgets::start(store.clone(), 600_000, crate::clock::system_clock()).await?;
    let ws_of = |name: String| {
        let store = store.clone();
        async move { super::workspace_id(store.as_ref(), &name).await }
    };
    match cmd {
        PlanCommand::List { workspace } => {
            let map = budgets.plans(ws_of(workspace).await?).await?;
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for plan in map.values() {
                *counts.entry(plan).or_default() += 1;
            }
            for (plan, tenants) in &counts {
                println!("{plan}\t{tenants} tenants");
            }
            println!("{} tenants on a plan", map.len());
        }
        PlanCommand::Show { tenant, workspace } => {
            let map = budgets.plans(ws_of(workspace).await?).await?;
            match map.get(tenant.as_str()) {
                Some(plan) => println!("{plan}"),
                None => println!("(no plan: the budgets' default limits apply)"),
            }
        }
        PlanCommand::Set {
            tenant,
            plan,
            from,
            workspace,
        } => {
            let ws = ws_of(workspace).await?;
            let from = effective_from(from.as_deref())?;
            assign(
                &budgets,
                ws,
                vec![(tenant.clone(), Some(plan.clone()), from)],
            )
            .await?;
            println!("{tenant}: {plan}");
        }
        PlanCommand::Unset {
            tenant,
            from,
            workspace,
        } => {
            let ws = ws_of(workspace).await?;
            let from = effective_from(from.as_deref())?;
            assign(&budgets, ws, vec![(tenant.clone(), None, from)]).await?;
            println!("{tenant}: no plan");
        }
        PlanCommand::History { tenant, workspace } => {
            let ws = ws_of(workspace).await?;
            let (_, changes) = budgets
                .tenant_history(ws, &tenant)
                .await
                .map_err(|e| match e {
                    BudgetError::Invalid(fields) => super::control::invalid("tenant", &fields),
                    BudgetError::Store(e) => e.into(),
                })?;
            for (from, plan) in &changes {
                let when = match *from {
                    crate::budget::plans::ALWAYS => "since always".to_string(),
                    at => format!("from {}", crate::report::rfc3339(at)),
                };
                println!("{when}\t{}", plan.as_deref().unwrap_or("(no plan)"));
            }
            if changes.is_empty() {
                println!("(never on a plan)");
            }
        }
        PlanCommand::Import { file, workspace } => {
            let ws = ws_of(workspace).await?;
            let text = std::fs::read_to_string(&file)?;
            let rows = crate::budget::plans::parse_csv(&text)
                .map_err(|fields| super::control::invalid("plans file", &fields))?;
            let n = assign(&budgets, ws, rows).await?;
            println!("{n} tenants assigned");
        }
    }
    Ok(())
}

async fn assign(
    budgets: &Budgets,
    ws: crate::store::WorkspaceId,
    rows: Vec<crate::budget::plans::Assignment>,
) -> anyhow::Result<usize> {
    budgets.assign_plans(ws, &rows).await.map_err(|e| match e {
        BudgetError::Invalid(fields) => super::control::invalid("plan", &fields),
        BudgetError::Store(e) => e.into(),
    })
}

fn effective_from(text: Option<&str>) -> anyhow::Result<Option<i64>> {
    text.map(|t| {
        crate::budget::plans::parse_effective_from("--from", t)
            .map_err(|e| super::control::invalid("plan", &[e]))
    })
    .transpose()
}
