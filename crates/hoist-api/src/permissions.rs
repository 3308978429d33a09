//! What each route needs: one table, read by the auth layer for every request behind the
//! token. It fails closed: a route missing from [`ROUTES`] needs an admin token, and a test
//! checks that every operation of the OpenAPI document (which lists every route the router
//! serves) has its line here, and that no line names a route that is not served.
//!
//! # Format of [`ROUTES`]
//!
//! One line per operation: `(METHOD, "route", Need, "what it does")`, where
//! - `METHOD` is the HTTP method in capitals (`"GET"`, `"POST"`, `"PATCH"`, `"DELETE"`);
//! - `route` is the path as axum matches it (its `MatchedPath`), with the prefix: e.g.
//!   `"/v1/services/{name}/cron/{job}"`;
//! - `Need` is the least the token must have, and over what ([`Need`]):
//!   - `Service(role)`: `role` over the service in the route's `{name}`;
//!   - `Deployment(role)`: `role` over the service of the deployment in the route's `{id}`;
//!   - `Platform(role)`: `role` over every service (a scoped token never passes);
//!   - `Handler(role)`: `role`, and the handler checks the service once it knows it (a deploy
//!     names it in its body; a listing shows a scoped token its own service only);
//!   - `Signed`: any valid token (who the server is, who the caller is);
//! - "what it does" finishes the 403's sentence "this token (deploy, service web) cannot …";
//!   for `Service` and `Deployment` lines the service is added (`roll back` → `roll back
//!   service 'web'`).
//!
//! Roles: `Admin` does everything; `Deploy` deploys, rolls back and reads; `Read` reads.

use hoist_core::TokenRole::{self, Admin, Deploy, Read};
use hoist_core::{Denied, Over, Principal, ServiceName};

/// The least a request's token must have; see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Service(TokenRole),
    Deployment(TokenRole),
    Platform(TokenRole),
    Handler(TokenRole),
    Signed,
}

use Need::*;

/// One line of [`ROUTES`].
pub(crate) type Rule = (&'static str, &'static str, Need, &'static str);

#[rustfmt::skip]
pub(crate) const ROUTES: &[Rule] = &[
    ("GET",    "/v1/services",                    Handler(Read),     "list services"),
    ("GET",    "/v1/services/{name}",             Service(Read),     "read"),
    ("DELETE", "/v1/services/{name}",             Service(Admin),    "delete"),
    ("GET",    "/v1/services/{name}/deployments", Service(Read),     "list the deployments of"),
    ("GET",    "/v1/services/{name}/logs",        Service(Read),     "read the logs of"),
    ("POST",   "/v1/services/{name}/scale",       Service(Admin),    "scale"),
    ("POST",   "/v1/services/{name}/stop",        Service(Admin),    "stop"),
    ("GET",    "/v1/services/{name}/usage",       Service(Read),     "read the usage of"),
    // `reveal=true` also needs `deploy` (checked in the handler): a deploy token can run code
    // that reads the values anyway, a read token must not see secrets.
    ("GET",    "/v1/services/{name}/env",         Service(Read),     "list the variables of"),
    ("PATCH",  "/v1/services/{name}/env",         Service(Admin),    "change the variables of"),
    ("POST",   "/v1/services/{name}/rollback",    Service(Deploy),   "roll back"),
    ("GET",    "/v1/services/{name}/events",      Service(Read),     "read the events of"),
    ("GET",    "/v1/services/{name}/metrics",     Service(Read),     "read the metrics of"),
    ("POST",   "/v1/deployments",                 Handler(Deploy),   "deploy"),
    ("POST",   "/v1/services/{name}/uploads",     Service(Deploy),   "upload a source for"),
    ("GET",    "/v1/services/{name}/cron",        Service(Read),     "list the cron jobs of"),
    ("POST",   "/v1/services/{name}/cron",        Service(Deploy),   "add a cron job to"),
    ("DELETE", "/v1/services/{name}/cron/{job}",  Service(Deploy),   "remove a cron job of"),
    ("POST",   "/v1/services/{name}/cron/{job}/run", Service(Deploy), "run a cron job of"),
    ("POST",   "/v1/services/{name}/cron/{job}/pause", Service(Deploy), "pause a cron job of"),
    ("POST",   "/v1/services/{name}/cron/{job}/resume", Service(Deploy), "resume a cron job of"),
    ("GET",    "/v1/services/{name}/cron/runs",   Service(Read),     "read the cron runs of"),
    // The webhook's secret is shown: as much as a deploy (a push deploys).
    ("GET",    "/v1/services/{name}/hooks",       Service(Deploy),   "read the webhook of"),
    ("POST",   "/v1/services/{name}/hooks/rotate", Service(Deploy),  "rotate the webhook secret of"),
    ("GET",    "/v1/services/{name}/uploads",     Service(Read),     "list the uploads of"),
    ("GET",    "/v1/deployments/{id}",            Deployment(Read),  "read a deployment of"),
    ("GET",    "/v1/deployments/{id}/events",     Deployment(Read),  "follow a deployment of"),
    ("GET",    "/v1/runtimes",                    Signed,            "list the runtimes"),
    ("GET",    "/v1/server",                      Signed,            "read the server's settings"),
    ("GET",    "/v1/session",                     Signed,            "read its session"),
    ("DELETE", "/v1/session",                     Signed,            "sign out"),
    ("POST",   "/v1/tokens",                      Platform(Admin),   "create tokens"),
    ("GET",    "/v1/tokens",                      Platform(Admin),   "list tokens"),
    ("DELETE", "/v1/tokens/{id}",                 Platform(Admin),   "revoke tokens"),
    ("GET",    "/metrics",                        Platform(Read),    "read the metrics of every service"),
];

/// What a route missing from the table needs: everything.
const UNLISTED: Rule = ("", "", Platform(Admin), "use this endpoint");

/// The line for `method` on the route axum matched; [`UNLISTED`] for none.
pub(crate) fn rule(method: &str, route: Option<&str>) -> &'static Rule {
    // axum answers HEAD with the GET handler (and no body): it needs what GET needs.
    let method = if method == "HEAD" { "GET" } else { method };
    route
        .and_then(|route| {
            ROUTES
                .iter()
                .find(|(m, r, _, _)| *m == method && *r == route)
        })
        .unwrap_or(&UNLISTED)
}

/// What the check needs from the request beyond its route.
pub(crate) trait Target {
    /// The path parameter `key` (`name`, `id`), if the route has it.
    fn param(&self, key: &str) -> Option<&str>;
    /// The service of deployment `id`; `Ok(None)` when there is no such deployment (the
    /// handler answers `404` for it), `Err` when it could not be read.
    fn deployment_service(&self, id: &str) -> Result<Option<ServiceName>, ()>;
}

/// The decision of the layer for `principal` on a request `rule` matched: `Ok` lets it
/// through (to a handler that, for `Handler` lines, checks the service itself).
pub(crate) fn check(principal: &Principal, rule: &Rule, target: &dyn Target) -> Result<(), Denied> {
    let (_, _, need, action) = *rule;
    match need {
        Signed => Ok(()),
        Platform(role) => principal.may(role, Over::Platform, action),
        Handler(role) => {
            // The service is not known here: only the role, over the token's own scope.
            match &principal.service {
                Some(own) => principal.may(role, Over::Service(own), action),
                None => principal.may(role, Over::Platform, action),
            }
        }
        Service(role) => {
            // A route without a valid `{name}` cannot be checked against a scope: only a
            // token for every service passes, and the handler answers the bad name.
            match target.param("name").map(str::parse::<ServiceName>) {
                Some(Ok(name)) => principal.may(
                    role,
                    Over::Service(&name),
                    &format!("{action} service '{name}'"),
                ),
                _ => principal.may(role, Over::Platform, action),
            }
        }
        Deployment(role) => {
            if principal.service.is_none() {
                return principal.may(role, Over::Platform, action);
            }
            let found = match target.param("id") {
                Some(id) => target.deployment_service(id),
                None => Ok(None),
            };
            match found {
                // Not knowing whose deployment it is, a token for one service is refused.
                Err(()) => Err(Denied(format!(
                    "this token ({principal}) cannot {action}: the deployment's service could not \
                     be read; try again"
                ))),
                Ok(Some(service)) => principal.may(
                    role,
                    Over::Service(&service),
                    &format!("{action} service '{service}'"),
                ),
                // No such deployment: the role is checked, and the handler answers 404.
                Ok(None) => match &principal.service {
                    Some(own) => principal.may(role, Over::Service(own), action),
                    None => Ok(()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use hoist_core::TokenId;

    use super::*;

    struct Fake {
        params: BTreeMap<&'static str, &'static str>,
        deployments: BTreeMap<&'static str, &'static str>,
    }

    impl Target for Fake {
        fn param(&self, key: &str) -> Option<&str> {
            self.params.get(key).copied()
        }

        fn deployment_service(&self, id: &str) -> Result<Option<ServiceName>, ()> {
            // "d-broken" stands for a row the store could not read.
            if id == "d-broken" {
                return Err(());
            }
            Ok(self.deployments.get(id).map(|s| s.parse().unwrap()))
        }
    }

    fn target(params: &[(&'static str, &'static str)]) -> Fake {
        Fake {
            params: params.iter().copied().collect(),
            deployments: [("d-00000000aa", "web"), ("d-00000000bb", "api")]
                .into_iter()
                .collect(),
        }
    }

    fn token(role: TokenRole, service: Option<&str>) -> Principal {
        Principal {
            token: TokenId::generate(),
            role,
            service: service.map(|s| s.parse().unwrap()),
        }
    }

    fn decide(
        p: &Principal,
        method: &str,
        route: &str,
        params: &[(&'static str, &'static str)],
    ) -> Result<(), String> {
        check(p, rule(method, Some(route)), &target(params)).map_err(|d| d.0)
    }

    /// Every operation the router serves behind the token (the OpenAPI document lists them
    /// all: `openapi`'s tests check it against the router) has its line, and every line is
    /// an operation that is served.
    #[test]
    fn every_route_behind_the_token_has_exactly_one_line() {
        let json = serde_json::to_value(crate::openapi::document()).unwrap();
        let mut served = BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                // Open operations (`security: [{}]`) never reach the layer.
                if op["security"] == serde_json::json!([{}]) {
                    continue;
                }
                served.insert((method.to_uppercase(), path.clone()));
            }
        }
        assert!(served.len() >= 20, "{served:?}");
        let listed: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, r, _, _)| (m.to_string(), r.to_string()))
            .collect();
        let unique: BTreeSet<_> = listed.iter().cloned().collect();
        assert_eq!(unique.len(), listed.len(), "a route is listed twice");
        let missing: Vec<_> = served.difference(&unique).collect();
        assert!(
            missing.is_empty(),
            "routes without a line in permissions::ROUTES (they need an admin token until \
             they get one): {missing:?}"
        );
        let stale: Vec<_> = unique.difference(&served).collect();
        assert!(
            stale.is_empty(),
            "lines for routes that are not served: {stale:?}"
        );
    }

    #[test]
    fn a_route_missing_from_the_table_needs_an_admin_token() {
        let e = decide(
            &token(Deploy, None),
            "POST",
            "/v1/services/{name}/brand-new",
            &[("name", "web")],
        );
        assert_eq!(
            e.unwrap_err(),
            "this token (deploy, every service) cannot use this endpoint: that needs an admin token"
        );
        // Also a known route with another method, and no matched route at all.
        assert!(decide(&token(Read, None), "PUT", "/v1/services", &[]).is_err());
        let unmatched = check(&token(Read, None), rule("GET", None), &target(&[]));
        assert!(unmatched.is_err());
        assert!(decide(&token(Admin, None), "POST", "/v1/whatever", &[]).is_ok());
        // HEAD is GET without the body.
        assert!(decide(&token(Read, None), "HEAD", "/v1/services", &[]).is_ok());
    }

    #[test]
    fn a_deploy_token_deploys_rolls_back_and_reads_its_service_only() {
        let ci = token(Deploy, Some("web"));
        let web = &[("name", "web")];
        assert!(decide(&ci, "POST", "/v1/services/{name}/rollback", web).is_ok());
        assert!(decide(&ci, "GET", "/v1/services/{name}/logs", web).is_ok());
        assert!(decide(&ci, "GET", "/v1/services/{name}", web).is_ok());
        assert!(decide(&ci, "POST", "/v1/deployments", &[]).is_ok());
        assert!(
            decide(
                &ci,
                "GET",
                "/v1/deployments/{id}",
                &[("id", "d-00000000aa")]
            )
            .is_ok()
        );
        assert!(decide(&ci, "GET", "/v1/services", &[]).is_ok());
        assert!(decide(&ci, "GET", "/v1/server", &[]).is_ok());

        let e = decide(&ci, "GET", "/v1/services/{name}/logs", &[("name", "api")]).unwrap_err();
        assert_eq!(
            e,
            "this token (deploy, service web) cannot read the logs of service 'api': it is for \
             service 'web' only"
        );
        let e = decide(
            &ci,
            "GET",
            "/v1/deployments/{id}/events",
            &[("id", "d-00000000bb")],
        )
        .unwrap_err();
        assert!(e.contains("follow a deployment of service 'api'"), "{e}");
        let e = decide(&ci, "POST", "/v1/tokens", &[]).unwrap_err();
        assert_eq!(
            e,
            "this token (deploy, service web) cannot create tokens: that needs an admin token"
        );
        let e = decide(&ci, "POST", "/v1/services/{name}/scale", web).unwrap_err();
        assert!(
            e.ends_with("cannot scale service 'web': that needs an admin token"),
            "{e}"
        );
        let e = decide(&ci, "GET", "/metrics", &[]).unwrap_err();
        assert!(e.contains("for every service"), "{e}");
        // A name that is not a service name: only an unscoped token could pass.
        assert!(decide(&ci, "GET", "/v1/services/{name}", &[("name", "Web!")]).is_err());
        assert!(decide(&ci, "GET", "/v1/services/{name}", &[]).is_err());
        // A deployment that does not exist: through to the handler's 404.
        assert!(
            decide(
                &ci,
                "GET",
                "/v1/deployments/{id}",
                &[("id", "d-00000000cc")]
            )
            .is_ok()
        );
    }

    #[test]
    fn a_read_token_reads_and_changes_nothing() {
        for reader in [token(Read, None), token(Read, Some("web"))] {
            let web = &[("name", "web")];
            assert!(decide(&reader, "GET", "/v1/services/{name}/metrics", web).is_ok());
            assert!(decide(&reader, "GET", "/v1/services/{name}/env", web).is_ok());
            let e = decide(&reader, "POST", "/v1/deployments", &[]).unwrap_err();
            assert!(
                e.ends_with("cannot deploy: that needs a deploy token"),
                "{e}"
            );
            let e = decide(&reader, "POST", "/v1/services/{name}/rollback", web).unwrap_err();
            assert!(e.contains("that needs a deploy token"), "{e}");
            for (m, r) in [
                ("DELETE", "/v1/services/{name}"),
                ("PATCH", "/v1/services/{name}/env"),
            ] {
                let e = decide(&reader, m, r, web).unwrap_err();
                assert!(e.contains("that needs an admin token"), "{m} {r}: {e}");
            }
            assert!(decide(&reader, "GET", "/v1/tokens", &[]).is_err());
        }
        // Only an unscoped read token sees the whole platform's metrics.
        assert!(decide(&token(Read, None), "GET", "/metrics", &[]).is_ok());
    }

    #[test]
    fn an_admin_token_passes_every_line() {
        let admin = token(Admin, None);
        let params = &[("name", "web"), ("id", "d-00000000bb")];
        for (m, r, _, _) in ROUTES {
            assert!(decide(&admin, m, r, params).is_ok(), "{m} {r}");
        }
    }

    #[test]
    fn a_deployment_that_cannot_be_read_refuses_a_scoped_token_and_not_an_unscoped_one() {
        let broken = [("id", "d-broken")];
        let ci = token(Deploy, Some("web"));
        let e = decide(&ci, "GET", "/v1/deployments/{id}", &broken).unwrap_err();
        assert!(e.contains("could not be read"), "{e}");
        assert!(decide(&token(Read, None), "GET", "/v1/deployments/{id}", &broken).is_ok());
    }
}
