//! The request headers a static answer depends on, parsed without allocating.

use crate::compress::Encoding;

/// The encoding to send, from `Accept-Encoding` and what is stored: the highest q among
/// those stored and acceptable (q=0 refuses), brotli before gzip at equal q, identity when
/// neither is.
pub(crate) fn choose_encoding(accept: Option<&[u8]>, has_br: bool, has_gzip: bool) -> Encoding {
    let Some(accept) = accept else {
        return Encoding::Identity;
    };
    let (mut br, mut gzip, mut star) = (None, None, None);
    for item in accept.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let token = trim(parts.next().unwrap_or_default());
        let q = parts.find_map(|p| parse_q(trim(p))).unwrap_or(1000);
        if token.eq_ignore_ascii_case(b"br") {
            br = Some(q);
        } else if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
            gzip = Some(q);
        } else if token == b"*" {
            star = Some(q);
        }
    }
    let br = if has_br { br.or(star).unwrap_or(0) } else { 0 };
    let gzip = if has_gzip {
        gzip.or(star).unwrap_or(0)
    } else {
        0
    };
    if br > 0 && br >= gzip {
        Encoding::Brotli
    } else if gzip > 0 {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// `q=0.8` -> 800 (thousandths, as the grammar allows three decimals).
fn parse_q(param: &[u8]) -> Option<u32> {
    let value = param
        .strip_prefix(b"q=")
        .or_else(|| param.strip_prefix(b"Q="))?;
    let (int, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    let int = match int {
        b"0" => 0,
        b"1" => 1,
        _ => return Some(0),
    };
    let mut thousandths = 0u32;
    for (i, &d) in frac.iter().take(3).enumerate() {
        if !d.is_ascii_digit() {
            return Some(0);
        }
        thousandths += u32::from(d - b'0') * [100, 10, 1][i];
    }
    Some((int * 1000 + thousandths).min(1000))
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for it).
pub(crate) fn none_match(header: &[u8], etag: &[u8]) -> bool {
    let etag = etag.strip_prefix(b"W/").unwrap_or(etag);
    header.split(|&b| b == b',').any(|tag| {
        let tag = trim(tag);
        tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag
    })
}

/// A single byte range resolved against the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// Inclusive `start..=end`.
    Satisfiable { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
    /// Several ranges, another unit, or bad syntax: the whole file is sent (RFC 9110 lets a
    /// server ignore a Range it does not support).
    Ignore,
}

pub(crate) fn parse_range(header: &[u8], size: u64) -> Range {
    // The range unit is case-insensitive (RFC 9110, 14.1).
    let spec = match header.split_at_checked(6) {
        Some((unit, spec)) if unit.eq_ignore_ascii_case(b"bytes=") => spec,
        _ => return Range::Ignore,
    };
    let spec = trim(spec);
    if spec.contains(&b',') {
        return Range::Ignore;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Range::Ignore;
    };
    let (first, last) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
    match (number(first), number(last)) {
        // `bytes=-500`: the last 500 bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                Range::Unsatisfiable
            } else {
                Range::Satisfiable {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
        }
        (Some(start), None) if last.is_empty() => {
            if start >= size {
                Range::Unsatisfiable
            } else {
                Range::Satisfiable {
                    start,
                    end: size - 1,
                }
            }
        }
        (Some(start), Some(end)) => {
            if end < start {
                Range::Ignore
            } else if start >= size {
                Range::Unsatisfiable
            } else {
                Range::Satisfiable {
                    start,
                    end: end.min(size - 1),
                }
            }
        }
        _ => Range::Ignore,
    }
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_follow_q_values_with_brotli_first() {
        let pick = |h: &str| choose_encoding(Some(h.as_bytes()), true, true);
        assert_eq!(pick("gzip, deflate, br"), Encoding::Brotli);
        assert_eq!(pick("gzip"), Encoding::Gzip);
        assert_eq!(pick("br;q=0, gzip"), Encoding::Gzip);
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Encoding::Gzip);
        assert_eq!(pick("gzip;q=0, br;q=0"), Encoding::Identity);
        assert_eq!(pick("*"), Encoding::Brotli);
        assert_eq!(pick("*;q=0"), Encoding::Identity);
        assert_eq!(pick("br;q=0, *"), Encoding::Gzip);
        assert_eq!(pick("identity"), Encoding::Identity);
        assert_eq!(pick("GZIP ; Q=1.0"), Encoding::Gzip);
        assert_eq!(pick("x-gzip"), Encoding::Gzip);
        assert_eq!(pick("gzip;q=0.000"), Encoding::Identity);
        assert_eq!(choose_encoding(None, true, true), Encoding::Identity);
        assert_eq!(
            choose_encoding(Some(b"br"), false, true),
            Encoding::Identity
        );
        assert_eq!(
            choose_encoding(Some(b"br, gzip"), false, true),
            Encoding::Gzip
        );
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        assert!(none_match(b"\"abc\"", b"\"abc\""));
        assert!(none_match(b"W/\"abc\"", b"\"abc\""));
        assert!(none_match(b"\"x\", \"abc\"", b"\"abc\""));
        assert!(none_match(b"*", b"\"abc\""));
        assert!(!none_match(b"\"abd\"", b"\"abc\""));
        assert!(!none_match(b"abc", b"\"abc\""));
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        use Range::*;
        assert_eq!(
            parse_range(b"bytes=0-99", 1000),
            Satisfiable { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range(b"Bytes=900-", 1000),
            Satisfiable {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            parse_range(b"bytes=-100", 1000),
            Satisfiable {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            parse_range(b"bytes=-5000", 1000),
            Satisfiable { start: 0, end: 999 }
        );
        assert_eq!(
            parse_range(b"bytes=500-5000", 1000),
            Satisfiable {
                start: 500,
                end: 999
            }
        );
        assert_eq!(parse_range(b"bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=1000-1001", 1000), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-1,5-6", 1000), Ignore);
        assert_eq!(parse_range(b"items=0-1", 1000), Ignore);
        assert_eq!(parse_range(b"bytes=5-1", 1000), Ignore);
        assert_eq!(parse_range(b"bytes=a-b", 1000), Ignore);
        assert_eq!(parse_range(b"bytes=-", 1000), Ignore);
        assert_eq!(parse_range(b"bytes=99999999999999999999-", 1000), Ignore);
    }
}
