//! Request and response headers as a proxy must treat them: the host a request is for
//! (RFC 9112 §3.2), hop-by-hop headers (RFC 9110 §7.6.1), and the X-Forwarded-* headers.

use hyper::Request;
use hyper::Version;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Connection-scoped headers (RFC 9110 §7.6.1) that a proxy must not forward.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The host a request is for, as RFC 9112 §3.2 has it: the authority of an absolute-form
/// target (which wins over the Host header, §3.2.2), else the Host header. More than one Host
/// line, none at all in an HTTP/1.1 request, or one that is no `host[:port]` is refused (400):
/// a proxy that routed by one Host and passed both on would let the app see another.
pub(crate) fn request_host<B>(req: &Request<B>) -> Result<Option<HeaderValue>, &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err("The request has more than one Host header.");
    }
    if let Some(authority) = req.uri().authority() {
        if authority.as_str().contains('@') {
            return Err("The request target names a user; a host is expected.");
        }
        return Ok(HeaderValue::from_str(authority.as_str()).ok());
    }
    match header {
        None if req.version() == Version::HTTP_11 => Err("The request has no Host header."),
        None => Ok(None),
        // Allowed when the target has no authority (RFC 9110 §7.2); routes nowhere.
        Some(v) if v.is_empty() => Ok(Some(v.clone())),
        // A clone of the Host header's value shares its bytes: no copy per request.
        Some(v) if v.as_bytes().iter().all(|&b| is_host_byte(b)) => Ok(Some(v.clone())),
        Some(_) => Err("The Host header is not a host name with an optional port."),
    }
}

/// Bytes of `uri-host [":" port]` (RFC 3986: reg-name, IPv4, or an IP literal in brackets). A
/// byte scan rather than `Authority` parsing, which copies the value.
pub(crate) fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b)
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names instead of a lookup per name.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(&k.as_str())) {
        return;
    }
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub(crate) fn forwarded(
    headers: &mut HeaderMap,
    client_ip: Option<&HeaderValue>,
    host: Option<&HeaderValue>,
) {
    if let Some(ip) = client_ip {
        let xff = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
            Some(prev) => HeaderValue::from_bytes(&[prev, b", ", ip.as_bytes()].concat()).ok(),
            None => Some(ip.clone()),
        };
        if let Some(v) = xff {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(v) = host {
        headers.insert(X_FORWARDED_HOST.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-private").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get("connection").is_none());
        assert!(h.get("x-kept").is_some());
    }

    #[test]
    fn forwarded_for_appends_the_peer() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        forwarded(
            &mut h,
            Some(&HeaderValue::from_static("127.0.0.1")),
            Some(&HeaderValue::from_static("a.localhost")),
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "a.localhost");
    }
}
