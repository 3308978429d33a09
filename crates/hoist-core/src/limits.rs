use std::time::Duration;

/// Limits the gateway applies to every proxied request.
///
/// They bound the memory and time one client can tie up, and match the figures users know from
/// Leapcell so apps behave the same after moving.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits;

impl RequestLimits {
    /// Largest request body, in bytes (100 MiB).
    pub const MAX_REQUEST_BODY: usize = 100 * 1024 * 1024;
    /// Longest single header line (name, ": " and value), in bytes (16 KiB).
    pub const MAX_HEADER_LINE: usize = 16 * 1024;
    /// Largest request head (request line plus all headers), in bytes (64 KiB).
    pub const MAX_HEADERS_TOTAL: usize = 64 * 1024;
    /// Longest a request may take end to end before the gateway gives up (15 minutes).
    pub const MAX_REQUEST_DURATION: Duration = Duration::from_secs(15 * 60);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(RequestLimits::MAX_REQUEST_BODY, 104_857_600);
        assert_eq!(RequestLimits::MAX_HEADER_LINE, 16_384);
        assert_eq!(RequestLimits::MAX_HEADERS_TOTAL, 65_536);
        assert_eq!(RequestLimits::MAX_REQUEST_DURATION.as_secs(), 900);
        assert_eq!(crate::ENV_TOTAL_LIMIT, 3072);
    }
}
