//! The router and its OpenAPI 3.1 document, built from one list of routes (utoipa-axum's
//! `routes!`): a route is served only if it is described, and described as its handler's
//! `#[utoipa::path]` and types say.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cron::*;
use crate::hooks::*;
use crate::routes::*;
use crate::session::*;
use crate::state::AppState;
use crate::tokens::*;
use crate::uploads::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hoist API",
        description = "The control plane of a Hoist server. Every request but `/healthz`, \
            `/openapi.json` and `POST /v1/session` needs `Authorization: Bearer <token>` or \
            the dashboard's session cookie `hoist_session` (from `POST /v1/session`). A request \
            authed by the cookie whose method is not GET or HEAD must send the session's \
            `csrf_token` in `X-CSRF-Token` and, if it has an `Origin`, this server's own; \
            else it is answered `403`. Each token has a role (`admin`, `deploy`, `read`) and \
            may be for one service: a request its token does not allow is answered `403` \
            naming the role it needs. Timestamps are integers, \
            milliseconds since the Unix epoch (UTC); durations returned are integer \
            milliseconds (`*_ms`), durations sent are strings with a unit (`30s`, `15m`). \
            Request bodies refuse unknown fields; any bad input is answered `400` with \
            `{\"error\": \"...\"}` naming the field or parameter and the rule.",
        license(name = "Apache-2.0")
    ),
    security(("bearer" = []), ("cookie" = [])),
    components(schemas(hoist_api_types::ApiErrorBody, hoist_api_types::LogsSkipped)),
    tags(
        (name = "services", description = "Services and their state"),
        (name = "deployments", description = "Deploys, their progress and rollbacks"),
        (name = "env", description = "A service's secret environment"),
        (name = "observe", description = "Logs, events, metrics and usage"),
        (name = "cron", description = "A service's cron jobs and their runs"),
        (name = "session", description = "Signing in to the dashboard"),
        (name = "tokens", description = "API tokens and their roles (admin tokens only)"),
        (name = "hooks", description = "Deploy on push: the git hosts' webhooks"),
        (name = "runtimes", description = "The runtime images apps are built on"),
        (name = "server", description = "The server itself")
    )
)]
struct ApiDoc;

/// `/v1`: everything behind the token.
fn v1() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_services))
        .routes(routes!(get_service, delete_service))
        .routes(routes!(service_deployments))
        .routes(routes!(service_logs))
        .routes(routes!(scale_service))
        .routes(routes!(stop_service))
        .routes(routes!(service_usage))
        .routes(routes!(service_env, change_service_env))
        .routes(routes!(rollback_service))
        .routes(routes!(service_events))
        .routes(routes!(service_series))
        .routes(routes!(upload_source, list_uploads))
        .routes(routes!(list_cron_jobs, add_cron_job))
        .routes(routes!(remove_cron_job))
        .routes(routes!(run_cron_job))
        .routes(routes!(pause_cron_job))
        .routes(routes!(resume_cron_job))
        .routes(routes!(list_cron_runs))
        .routes(routes!(create_deployment))
        .routes(routes!(get_deployment))
        .routes(routes!(deployment_events))
        .routes(routes!(list_runtimes))
        .routes(routes!(server_info))
        .routes(routes!(create_session, get_session, delete_session))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(service_hooks))
        .routes(routes!(rotate_service_hooks))
}

/// The served document, as JSON.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "server", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub(crate) async fn openapi_json(
    axum::extract::State(s): axum::extract::State<Arc<AppState>>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.clone(),
    )
}

/// The routes behind the token, the open ones, and the document describing both.
pub(crate) fn parts() -> (Router<Arc<AppState>>, Router<Arc<AppState>>, Document) {
    // Scrapers send the same bearer token (Prometheus: `authorization: credentials_file`).
    let (authed, authed_doc) = OpenApiRouter::new()
        .nest("/v1", v1())
        .routes(routes!(metrics))
        .split_for_parts();
    let (open, open_doc) = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(openapi_json))
        // Authenticated by the host's signature with the service's secret, not a token.
        .routes(routes!(receive_webhook))
        .split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(authed_doc);
    doc.merge(open_doc);
    Common.modify(&mut doc);
    (authed, open, doc)
}

/// The OpenAPI document of the API.
pub fn document() -> Document {
    parts().2
}

/// What every operation shares: the bearer scheme, and the error answers (an `ApiErrorBody`)
/// that any of them may give.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::COOKIE,
                "The dashboard's session (POST /v1/session). Requests other than GET and HEAD \
                 made with it must send the session's csrf_token in X-CSRF-Token.",
            ))),
        );
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ApiErrorBody")))
                        .build(),
                )
                .build()
        };
        components.responses.insert(
            "BadRequest".into(),
            RefOr::T(error(
                "Bad input: the message names the field or parameter and the rule",
            )),
        );
        components.responses.insert(
            "Unauthorized".into(),
            RefOr::T(error("No valid bearer token or session")),
        );
        components.responses.insert(
            "Forbidden".into(),
            RefOr::T(error(
                "The token's role or service does not allow this (the message names the role \
                 it needs); or made with the session cookie but without its X-CSRF-Token, or \
                 from another site",
            )),
        );
        components.responses.insert(
            "NotFound".into(),
            RefOr::T(error("No such service or deployment")),
        );
        components
            .responses
            .insert("ServerError".into(), RefOr::T(error("The server failed")));
        merge_flattened_scaling(doc);
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = path == "/healthz" || path == "/openapi.json";
            // Webhooks are authenticated by their signature (their own 401), not a token or
            // the session cookie.
            let hook = path.starts_with("/hooks/");
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().filter_map(Option::as_mut) {
                let mut add = |code: &str, name: &str| {
                    op.responses
                        .responses
                        .entry(code.into())
                        .or_insert_with(|| {
                            RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                        });
                };
                if !open {
                    add("400", "BadRequest");
                    // Any operation but a webhook's may be refused to a token's role (and a
                    // change, to a cookie without its CSRF token); a webhook is signed instead.
                    if !hook {
                        add("401", "Unauthorized");
                        add("403", "Forbidden");
                    }
                    if path.contains('{') {
                        add("404", "NotFound");
                    }
                }
                add("500", "ServerError");
            }
        }
    }
}

/// utoipa renders the deploy request's flattened scaling settings as `allOf` of two objects;
/// as ScalingSettings refuses other fields (`additionalProperties: false`), no body would
/// validate against both. The deploy request is one object on the wire: say so, with all its
/// fields, and refuse others as the server does.
fn merge_flattened_scaling(doc: &mut Document) {
    let Ok(mut json) = serde_json::to_value(&*doc) else {
        return;
    };
    let schemas = &mut json["components"]["schemas"];
    let scaling = schemas["ScalingSettings"]["properties"].clone();
    let deploy = &mut schemas["DeployRequest"];
    let Some(parts) = deploy["allOf"].as_array() else {
        return;
    };
    let Some(mut own) = parts.iter().find(|p| p.get("$ref").is_none()).cloned() else {
        return;
    };
    if let (Some(props), Some(extra)) = (own["properties"].as_object_mut(), scaling.as_object()) {
        props.extend(extra.clone());
    }
    own["additionalProperties"] = false.into();
    if let Some(d) = deploy["description"].as_str() {
        own["description"] = d.into();
    }
    *deploy = own;
    if let Ok(merged) = serde_json::from_value(json) {
        *doc = merged;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The paths an axum router serves. axum has no API to list them; its `Debug` output holds
    /// each route's path as a quoted string, which is what this reads.
    fn served_paths(router: &Router<Arc<AppState>>) -> BTreeSet<String> {
        let debug = format!("{router:?}");
        debug
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| s.starts_with('/'))
            // axum's own routes for the fallback (nesting adds `/` and a catch-all).
            .filter(|s| *s != "/" && !s.contains("__private__axum"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_route_the_router_serves_is_in_the_document() {
        let (authed, open, doc) = parts();
        let mut served = served_paths(&authed);
        served.extend(served_paths(&open));
        let documented: BTreeSet<String> = doc.paths.paths.keys().cloned().collect();
        assert!(
            served.contains("/v1/services/{name}/deployments"),
            "{served:?}"
        );
        assert!(served.len() >= 18, "{served:?}");
        assert_eq!(served, documented);
    }

    #[test]
    fn every_operation_has_an_operation_id_and_the_document_is_openapi_3_1() {
        let doc = document();
        let json = serde_json::to_value(&doc).unwrap();
        assert!(
            json["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            json["openapi"]
        );
        let mut ids = BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str();
                assert!(id.is_some(), "{method} {path} has no operationId");
                assert!(ids.insert(id.unwrap().to_string()), "duplicate {id:?}");
            }
        }
    }

    /// `ui/openapi.json` as it must be: the served document, pretty, with a final newline.
    fn rendered() -> String {
        let json = serde_json::to_value(document()).unwrap();
        serde_json::to_string_pretty(&json).unwrap() + "\n"
    }

    /// The dashboard's API types are generated from `ui/openapi.json`: a copy that lags the
    /// server lets the page compile against an API that no longer exists.
    #[test]
    fn ui_openapi_json_is_the_served_document() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/openapi.json");
        let want = rendered();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "ui/openapi.json is not the document the server serves; regenerate it with \
             `UPDATE_OPENAPI=1 cargo test -p hoist-api openapi` and commit it"
        );
    }

    /// Every `$ref` names something in the document (openapi-typescript refuses a file with
    /// one that does not).
    #[test]
    fn every_ref_in_the_document_resolves() {
        fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let json = serde_json::to_value(document()).unwrap();
        let mut found = Vec::new();
        refs(&json, &mut found);
        assert!(found.len() > 20, "{found:?}");
        let dangling: Vec<&str> = found
            .into_iter()
            .filter(|r| {
                r.strip_prefix('#')
                    .is_none_or(|pointer| json.pointer(pointer).is_none())
            })
            .collect();
        assert!(dangling.is_empty(), "dangling $ref: {dangling:?}");
    }

    #[test]
    fn the_session_is_documented_with_its_cookie_scheme() {
        let json = serde_json::to_value(document()).unwrap();
        let cookie = &json["components"]["securitySchemes"]["cookie"];
        assert_eq!(cookie["type"], "apiKey");
        assert_eq!(cookie["in"], "cookie");
        assert_eq!(cookie["name"], "hoist_session");
        let session = &json["paths"]["/v1/session"];
        assert_eq!(session["post"]["security"], serde_json::json!([{}]));
        for m in ["get", "delete"] {
            assert!(session[m]["operationId"].is_string(), "{m}");
        }
        assert!(
            json["components"]["schemas"]["SessionInfo"]["properties"]["csrf_token"].is_object()
        );
        assert!(session["delete"]["responses"]["403"].is_object());
    }

    #[test]
    fn the_schemas_say_what_the_old_document_got_wrong() {
        let json = serde_json::to_value(document()).unwrap();
        std::fs::write(
            "/tmp/openapi.json",
            serde_json::to_string_pretty(&json).unwrap(),
        )
        .ok();
        let schemas = &json["components"]["schemas"];
        // LogLine.stream includes `access`.
        let streams = schemas["LogStream"]["enum"].as_array().unwrap();
        assert!(streams.iter().any(|s| s == "access"), "{streams:?}");
        // events_24h is documented.
        let view = serde_json::to_string(&schemas["ServiceView"]).unwrap();
        assert!(view.contains("events_24h"), "{view}");
        // A recorded request's unset fields may be null.
        let name = &schemas["DeployRequest"]["properties"]["name"]["type"];
        assert!(
            name.as_array()
                .is_some_and(|t| t.iter().any(|t| t == "null")),
            "{name}"
        );
    }
}
