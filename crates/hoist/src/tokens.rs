//! `hoist tokens`: API tokens for CI and other tools, each with a role (`admin`, `deploy`,
//! `read`) and, for `deploy` and `read`, optionally the one service it is for.

use clap::Subcommand;
use hoist_api_types::{
    CreateTokenRequest, CreatedToken, ServiceName, TokenId, TokenInfo, TokenName, TokenRole,
};

use crate::JsonFlag;
use crate::api::Api;
use crate::out::{self, age, outln, print_table, table};

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Make a token; its secret is printed this once (the server keeps only its hash).
    Create {
        /// Unique among live tokens (letters, digits, '-', '_', '.'), e.g. `ci`.
        #[arg(long)]
        name: TokenName,
        /// admin (everything), deploy (deploy, roll back and read), read (read only).
        #[arg(long)]
        role: TokenRole,
        /// The one existing service a deploy or read token is for (default: every service).
        #[arg(long)]
        service: Option<ServiceName>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List live tokens: id, name, role, service, when made and last used (no secrets).
    Ls {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Revoke a token by id (`tok_…`): its requests get 401 and its dashboard sessions end.
    Revoke {
        id: TokenId,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// What a token covers, in one cell or phrase: `web`, or `every service`.
fn scope(t: &TokenInfo) -> String {
    t.service
        .as_ref()
        .map_or_else(|| "every service".to_string(), |s| s.to_string())
}

pub async fn tokens(cmd: TokensCommand) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    match cmd {
        TokensCommand::Create {
            name,
            role,
            service,
            out,
        } => {
            let body = CreateTokenRequest {
                name,
                role,
                service,
            };
            let made: CreatedToken = api
                .call(api.req(reqwest::Method::POST, "/v1/tokens").json(&body))
                .await?;
            if out.json {
                return out::json(&made);
            }
            created(&made)
        }
        TokensCommand::Ls { out } => {
            let list: Vec<TokenInfo> = api.get("/v1/tokens").await?;
            if out.json {
                return out::json(&list);
            }
            let mut t = table(
                &["ID", "NAME", "ROLE", "SERVICE", "CREATED", "LAST USED"],
                &[],
            );
            for tok in &list {
                t.add_row(vec![
                    tok.id.to_string(),
                    tok.name.to_string(),
                    tok.role.to_string(),
                    scope(tok),
                    format!("{} ago", age(tok.created_at)),
                    tok.last_used_at
                        .map_or_else(|| "never".to_string(), |at| format!("{} ago", age(at))),
                ]);
            }
            print_table(&t)
        }
        TokensCommand::Revoke { id, out } => {
            let t: TokenInfo = api
                .call(api.req(reqwest::Method::DELETE, &format!("/v1/tokens/{id}")))
                .await?;
            if out.json {
                return out::json(&t);
            }
            outln!(
                "revoked {} ({}: {}, {}); requests made with it now get 401",
                t.id,
                t.name,
                t.role,
                scope(&t)
            )
        }
    }
}

/// The secret, once, and how a CI job uses it.
fn created(made: &CreatedToken) -> anyhow::Result<()> {
    let t = &made.token;
    outln!(
        "created token {} ({}: {}, {}). Its secret, shown this once (store it now, e.g. as a \
         CI secret):",
        t.id,
        t.name,
        t.role,
        scope(t)
    )?;
    outln!()?;
    outln!("  {}", made.secret)?;
    outln!()?;
    let api = std::env::var("HOIST_API")
        .ok()
        .filter(|a| !a.trim().is_empty())
        .map(|a| format!("HOIST_API={} ", a.trim()))
        .unwrap_or_default();
    let name = t.service.as_ref().map_or("NAME", |s| s.as_str());
    match t.role {
        TokenRole::Read => outln!(
            "use it as:  {api}HOIST_TOKEN={} hoist status {name}",
            made.secret
        ),
        _ => outln!(
            "use it as:  {api}HOIST_TOKEN={} hoist deploy . --name {name}",
            made.secret
        ),
    }
}
