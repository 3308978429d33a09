//! Static files answered by the gateway itself, before the pool is asked for an instance:
//! no instance is started, thawed, or counted as active for them.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::proxy::ProxyBody;
use crate::table::ServicePool;

/// The static answer, or the request back for the app.
// The request goes back by value: boxing it would cost an allocation on every request the
// app answers, to save a move of a few hundred bytes.
#[allow(clippy::result_large_err)]
pub(crate) fn answer(
    pool: &ServicePool,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Request<Incoming>> {
    let site = pool.static_guard();
    let Some(site) = site.as_ref() else {
        return Err(req);
    };
    let (parts, body) = req.into_parts();
    match site.respond(&parts) {
        Some(resp) => {
            Ok(resp.map(|bytes: Bytes| Full::new(bytes).map_err(|never| match never {}).boxed()))
        }
        None => Err(Request::from_parts(parts, body)),
    }
}
