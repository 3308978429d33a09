//! File bodies kept in memory: a hot file costs no syscall, and every answer is a `Bytes`
//! clone of the one copy.

use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;

use crate::compress::Encoding;
use crate::manifest::Digest;

type Key = (Digest, Encoding);

pub(crate) struct BodyCache {
    inner: Mutex<Inner>,
    budget: u64,
}

struct Inner {
    lru: LruCache<Key, Bytes>,
    bytes: u64,
}

impl BodyCache {
    pub(crate) fn new(budget: u64) -> BodyCache {
        BodyCache {
            // Unbounded by count: the byte budget decides evictions.
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
        }
    }

    /// The largest body kept: bigger ones are read per request, so one large video does not
    /// evict every small file.
    pub(crate) fn max_entry(&self) -> u64 {
        self.budget / 8
    }

    pub(crate) fn get(&self, hash: &Digest, encoding: Encoding) -> Option<Bytes> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.lru.get(&(*hash, encoding)).cloned()
    }

    pub(crate) fn insert(&self, hash: &Digest, encoding: Encoding, body: Bytes) {
        let len = body.len() as u64;
        if len > self.max_entry() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = inner.lru.put((*hash, encoding), body) {
            inner.bytes -= old.len() as u64;
        }
        inner.bytes += len;
        while inner.bytes > self.budget {
            match inner.lru.pop_lru() {
                Some((_, old)) => inner.bytes -= old.len() as u64,
                None => break,
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.lru.len(), inner.bytes)
    }
}
