//! Content types and the precompressed variants.

use std::io::{BufReader, Read, Write};

/// A stored representation of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Gzip => ".gz",
            Encoding::Brotli => ".br",
        }
    }

    /// The `Content-Encoding` token, and the ETag's suffix.
    pub(crate) fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// The content type of a url path from its file name; text gets `charset=utf-8` (build
/// tools write UTF-8, and without it browsers guess from the bytes).
pub(crate) fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str();
    let text = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/manifest+json"
                | "image/svg+xml"
        );
    if text && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{essence}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// Whether compressing can pay: text and a few binary formats stored raw. Images other than
/// SVG, woff/woff2, archives, audio and video are compressed already.
pub(crate) fn worth_compressing(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/wasm"
                | "application/x-javascript"
                | "application/vnd.ms-fontobject"
                | "image/x-icon"
                | "image/vnd.microsoft.icon"
                | "image/bmp"
                | "font/ttf"
                | "font/otf"
                | "application/x-font-ttf"
        )
}

/// Brotli's best quality is slow (about 1 MB/s); files past 256 KB get a quality close in
/// ratio at tens of MB/s, so a deploy with big bundles does not take minutes.
fn brotli_quality(size: u64) -> u32 {
    if size <= 256 << 10 { 11 } else { 9 }
}

/// Compresses `input` into `output`; returns the compressed size.
pub(crate) fn compress(
    input: impl Read,
    output: std::fs::File,
    encoding: Encoding,
    size: u64,
) -> std::io::Result<u64> {
    let mut input = BufReader::with_capacity(256 << 10, input);
    let file = match encoding {
        Encoding::Identity => {
            let mut output = output;
            std::io::copy(&mut input, &mut output)?;
            output
        }
        Encoding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(output, flate2::Compression::best());
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
        Encoding::Brotli => {
            // lgwin 22: brotli's default window (4 MB), which every browser decodes.
            let mut enc = brotli::CompressorWriter::new(output, 64 << 10, brotli_quality(size), 22);
            std::io::copy(&mut input, &mut enc)?;
            enc.flush()?;
            enc.into_inner()
        }
    };
    Ok(file.metadata()?.len())
}
