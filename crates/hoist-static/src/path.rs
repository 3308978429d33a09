//! A request path made into a manifest key, or refused.

use std::borrow::Cow;

/// Why a request path can never name a static file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `..`, `.`, an encoded `/` or `\`, NUL or another control byte, a backslash, or bytes
    /// that are not UTF-8 once decoded.
    Unsafe,
}

/// The path percent-decoded once. Encoded slashes and backslashes are refused rather than
/// decoded (`/a%2f..%2fb` must not become a different number of segments), and so is any
/// `.` or `..` segment, decoded or not: lookups are in the manifest only, so nothing could
/// escape the folder anyway, but a path that means something else to a client, a cache in
/// front and the app is better answered by the app or refused.
pub(crate) fn decode(raw: &str) -> Result<Cow<'_, str>, Refused> {
    if !raw.starts_with('/') {
        return Err(Refused::Unsafe);
    }
    let decoded: Cow<'_, str> = if raw.contains('%') {
        let bytes = raw.as_bytes();
        for (i, _) in raw.match_indices('%') {
            let code = bytes.get(i + 1..i + 3).ok_or(Refused::Unsafe)?;
            if code.eq_ignore_ascii_case(b"2f") || code.eq_ignore_ascii_case(b"5c") {
                return Err(Refused::Unsafe);
            }
        }
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| Refused::Unsafe)?;
        Cow::Owned(decoded.into_owned())
    } else {
        Cow::Borrowed(raw)
    };
    if decoded.chars().any(|c| c.is_control() || c == '\\')
        || decoded.split('/').any(|seg| seg == "." || seg == "..")
    {
        return Err(Refused::Unsafe);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_encoded_names_decode_once() {
        assert_eq!(decode("/assets/app.js").as_deref(), Ok("/assets/app.js"));
        assert_eq!(decode("/a%20b.txt").as_deref(), Ok("/a b.txt"));
        assert_eq!(decode("/caf%C3%A9.html").as_deref(), Ok("/café.html"));
        // Once: `%2541` is the file named `%41`, not `A`.
        assert_eq!(decode("/%2541").as_deref(), Ok("/%41"));
        assert_eq!(decode("/docs/").as_deref(), Ok("/docs/"));
    }

    #[test]
    fn traversal_encoded_separators_and_odd_bytes_are_refused() {
        for raw in [
            "/../etc/passwd",
            "/a/../../b",
            "/a/..",
            "/./a",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/x",
            "/.%2e/x",
            "/a%2f..%2f..%2fb",
            "/a%2F..",
            "/a%5c..%5cb",
            "/a\\..\\b",
            "/a%00.js",
            "/a%0a.js",
            "/a%ff.js",
            "/a%",
            "/a%2",
            "relative",
        ] {
            assert_eq!(decode(raw), Err(Refused::Unsafe), "{raw}");
        }
    }
}
