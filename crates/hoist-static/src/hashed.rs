//! Whether a file name carries a content hash, so it can be cached for a year: the same name
//! will never hold other bytes.
//!
//! Recognised (the name's stem, before its last extension, and for webpack also before
//! `.chunk`):
//! - a `.`- or `-`-separated part of 8 to 64 hex digits with at least one digit and one
//!   letter a-f: `app.3f9c1a2b.js`, `main.8e3f1c2a.chunk.js`, `main-8e3f1c2a5b6d7e8f.js`
//!   (webpack, Parcel, Next.js, older Vite);
//! - a last `-`-separated part of 6 to 16 base64url-ish characters mixing cases with a
//!   digit (`index-BcD3fG.js`, esbuild's `chunk-5VWKYHIZ.js`), or exactly 8 letters that are
//!   not all lowercase (Rollup/Vite 5's `index-DiwrgTda.css`) in an `assets/` folder (Vite's
//!   `build.assetsDir`), so that a font of `public/` named `Inter-SemiBold.woff2` is not
//!   cached for a year;
//! - Rollup's 8-character base64url hash after the last-but-eight `-`, which may itself hold a
//!   `-` (`index-CnAq-3Zb.js`);
//! - anything under `/_next/static/`, which Next.js itself versions by build id.
//!
//! Words are not hashes: `jquery-ui.js`, `polyfills-es2015.js`, `logo-dark.svg`,
//! `report-20240101.pdf`, `bootstrap.min.css`. The one known false positive is an 8-letter
//! CamelCase word after a dash in an `assets/` folder (`assets/theme-DarkMode.css`), which
//! Rollup's hashes cannot be told from; a miss only costs revalidation (`no-cache`), so the
//! rules lean to missing.

/// Whether the url path's file name carries a content hash.
pub(crate) fn is_hashed(path: &str) -> bool {
    if path.starts_with("/_next/static/") {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    if stem.is_empty() || ext.is_empty() {
        return false;
    }
    let stem = stem.strip_suffix(".chunk").unwrap_or(stem);
    if stem.split(['.', '-', '_']).any(is_hex_hash) {
        return true;
    }
    let in_assets = path.split('/').any(|segment| segment == "assets");
    // Rollup's `[name]-[hash]`: the hash is 8 characters of base64url, `-` among them.
    if let Some(at) = stem.len().checked_sub(9)
        && at > 0
        && stem.as_bytes().get(at) == Some(&b'-')
        && let Some(hash) = stem.get(at + 1..)
        && hash.contains('-')
        && is_base64_hash(&hash.replace('-', "_"), in_assets)
    {
        return true;
    }
    // The last part after a dash, for base64url hashes; a `.`-separated one of those
    // (`app.BcD3fG.js`) is not a layout any bundler writes.
    match stem.rsplit_once('-') {
        Some((head, tail)) if !head.is_empty() => is_base64_hash(tail, in_assets),
        _ => false,
    }
}

fn is_hex_hash(part: &str) -> bool {
    (8..=64).contains(&part.len())
        && part.bytes().all(|b| b.is_ascii_hexdigit())
        && part.bytes().any(|b| b.is_ascii_digit())
        && part.bytes().any(|b| b.is_ascii_alphabetic())
}

/// `in_assets`: whether the file is in an `assets/` folder, where a digit-free 8-letter part
/// is taken for Rollup's hash rather than for a word.
fn is_base64_hash(part: &str, in_assets: bool) -> bool {
    if !(6..=16).contains(&part.len())
        || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return false;
    }
    let digits = part.bytes().any(|b| b.is_ascii_digit());
    let upper = part.bytes().any(|b| b.is_ascii_uppercase());
    let lower = part.bytes().any(|b| b.is_ascii_lowercase());
    let letters = upper || lower;
    if digits {
        // `es2015`, `v2` are lowercase words with a version: a hash has a capital too.
        letters && upper
    } else {
        // esbuild's base32 (`chunk-ABCDEFGH.js`) is all capitals, which words seldom are.
        part.len() == 8 && upper && (in_assets || !lower)
    }
}

#[cfg(test)]
mod tests {
    use super::is_hashed;

    #[test]
    fn bundler_names_with_hashes_are_recognised() {
        for path in [
            "/app.3f9c1a2b.js",
            "/static/js/main.8e3f1c2a.chunk.js",
            "/static/css/2.a1b2c3d4.chunk.css",
            "/assets/index-BcD3fG.js",
            "/assets/index-DiwrgTda.css",
            "/assets/index-3f9c1a2b.js",
            "/assets/vendor-B-x1Yz_q.js",
            "/assets/index-CnAq-3Zb.js",
            "/assets/index-Cn-q3Zbx.css",
            "/chunk-5VWKYHIZ.js",
            "/chunk-ABCDEFGH.js",
            "/main-8e3f1c2a5b6d7e8f.js",
            "/main.0a1b2c3d4e5f6a7b8c9d.js",
            "/3f9c1a2b4d5e6f70.woff2",
            "/_next/static/chunks/webpack.js",
            "/_next/static/abcdef/_buildManifest.js",
        ] {
            assert!(is_hashed(path), "{path} should count as hashed");
        }
    }

    #[test]
    fn plain_names_are_not_taken_for_hashes() {
        for path in [
            "/index.html",
            "/",
            "/favicon.ico",
            "/jquery-ui.js",
            "/polyfills-es2015.js",
            "/logo-dark.svg",
            "/report-20240101.pdf",
            "/bootstrap.min.css",
            "/font-awesome.min.css",
            "/assets/README",
            "/deadbeef",
            "/robots.txt",
            "/inter-latin-400-normal.woff2",
            "/app-polyfill.js",
            "/data-12345678.json",
            "/assets/.3f9c1a2b",
            "/v2-beta.js",
            "/Inter-SemiBold.woff2",
            "/fonts/OpenSans-SemiBold.ttf",
            "/btn-Download.png",
            "/react-dom.production.min.js",
            "/jquery-3.7.1.min.js",
            "/assets/my-long-name.js",
        ] {
            assert!(!is_hashed(path), "{path} should not count as hashed");
        }
    }
}
