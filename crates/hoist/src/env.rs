//! `hoist env` and `hoist rollback`: changing what a service runs without rebuilding it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hoist_api_types::{
    Deployment, DeploymentId, EnvApplied, EnvChange, EnvList, EnvQuery, RollbackRequest,
};

use crate::JsonFlag;
use crate::api::Api;
use crate::out::{self, outln};

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Set variables (KEY=VALUE...); running instances are replaced, no rebuild.
    Set {
        name: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
    },
    /// Remove variables by name.
    Unset {
        name: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// List variable names (values only with --reveal).
    Ls {
        name: String,
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Set every variable of a dotenv file (KEY=VALUE lines, quotes, comments, `export`).
    Import { name: String, file: PathBuf },
}

#[derive(Args)]
pub struct RollbackArgs {
    name: String,
    /// The deployment to make live again (default: the one before the live one).
    deployment: Option<DeploymentId>,
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn env(cmd: EnvCommand) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    match cmd {
        EnvCommand::Set { name, assignments } => {
            let mut set = BTreeMap::new();
            for a in &assignments {
                let Some((k, v)) = a.split_once('=') else {
                    // Only the part before any '=' could be a name; nothing here is echoed
                    // that might be a value typed without its name.
                    bail!("expected KEY=VALUE, got an argument without '='");
                };
                set.insert(k.to_string(), v.to_string());
            }
            change(&api, &name, &EnvChange { set, unset: vec![] }).await
        }
        EnvCommand::Unset { name, keys } => {
            let unset = EnvChange {
                set: BTreeMap::new(),
                unset: keys,
            };
            change(&api, &name, &unset).await
        }
        EnvCommand::Import { name, file } => {
            let mut set = BTreeMap::new();
            let lines = dotenvy::from_path_iter(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            for item in lines {
                let (k, v) = item.with_context(|| format!("parsing {}", file.display()))?;
                set.insert(k, v);
            }
            if set.is_empty() {
                bail!("{} sets no variables", file.display());
            }
            change(&api, &name, &EnvChange { set, unset: vec![] }).await
        }
        EnvCommand::Ls { name, reveal, out } => {
            let env: EnvList = api
                .call(
                    api.req(reqwest::Method::GET, &format!("/v1/services/{name}/env"))
                        .query(&EnvQuery { reveal }),
                )
                .await?;
            if out.json {
                return out::json(&env);
            }
            if env.names.is_empty() {
                outln!("{name} has no environment variables")?;
            }
            for n in &env.names {
                match env.values.as_ref().and_then(|v| v.get(n)) {
                    Some(v) if reveal => outln!("{n}={v}")?,
                    _ => outln!("{n}")?,
                }
            }
            Ok(())
        }
    }
}

async fn change(api: &Api, name: &str, body: &EnvChange) -> anyhow::Result<()> {
    let r: EnvApplied = api
        .call(
            api.req(reqwest::Method::PATCH, &format!("/v1/services/{name}/env"))
                .json(body),
        )
        .await?;
    if !r.changed {
        return outln!("{name}: environment unchanged");
    }
    let replaced = r.replaced;
    outln!(
        "{name}: environment updated (revision {}, {} variable(s)); {}",
        r.revision,
        r.names.len(),
        if replaced > 0 {
            format!("{replaced} running instance(s) replaced, no rebuild")
        } else {
            "the next instance starts with it, no rebuild".to_string()
        }
    )
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let d: Deployment = api
        .call(
            api.req(
                reqwest::Method::POST,
                &format!("/v1/services/{}/rollback", args.name),
            )
            .json(&RollbackRequest {
                deployment: args.deployment,
            }),
        )
        .await?;
    if args.out.json {
        return out::json(&d);
    }
    let commit = d.commit_sha.as_deref().unwrap_or("?");
    outln!(
        "{}: deployment {} (commit {}) is live again, from its stored image",
        args.name,
        d.id,
        &commit[..commit.len().min(12)],
    )
}
