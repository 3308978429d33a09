//! `hoist hooks NAME`: a service's webhook, the URLs to give the git host and the secret it
//! signs with (`--rotate` makes a new secret).

use clap::Args;
use hoist_api_types::{AutoDeploy, WebhookInfo};

use crate::JsonFlag;
use crate::api::Api;
use crate::out::{self, duration, outln};

#[derive(Args)]
pub struct HooksArgs {
    name: String,
    /// Make a new secret; deliveries signed with the old one are refused from now on.
    #[arg(long)]
    rotate: bool,
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn hooks(args: HooksArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let path = format!("/v1/services/{}/hooks", args.name);
    let info: WebhookInfo = if args.rotate {
        api.call(api.req(reqwest::Method::POST, &format!("{path}/rotate")))
            .await?
    } else {
        api.get(&path).await?
    };
    if args.out.json {
        return out::json(&info);
    }
    outln!("github  {}", info.urls.github)?;
    outln!("gitlab  {}", info.urls.gitlab)?;
    outln!("gitea   {}", info.urls.gitea)?;
    outln!("secret  {}", info.secret)?;
    let branch = info.branch.as_deref().unwrap_or("the default branch");
    let watch = if info.watch.is_empty() {
        String::new()
    } else {
        format!(", only when a change matches {}", info.watch.join(" "))
    };
    match info.auto_deploy {
        AutoDeploy::Push => outln!("deploys pushes to {branch}{watch}"),
        AutoDeploy::Poll => outln!(
            "polls {branch} every {} (webhooks are ignored; `hoist deploy … --auto-deploy push` to use them)",
            duration(info.poll_interval_ms)
        ),
        AutoDeploy::Off => outln!(
            "auto-deploy is off: pushes are acknowledged and ignored (`hoist deploy … --auto-deploy push` turns it on)"
        ),
    }
}
