//! Large objects as memory maps whose addresses the gateway can recognise in a write, to
//! send them with `sendfile(2)` from the file instead of copying them into the socket.
//!
//! A body is a `Bytes` over the map (no copy on read, the page cache is the memory). While
//! any clone of it is alive, its address range is registered here with the open file, so a
//! writer handed a slice of it ([`mapped_file`]) learns the file and offset the slice came
//! from. Objects are never modified after their rename into the store (a new version is a
//! new object), so the bytes at that offset are the slice's bytes; an object removed from the
//! store stays readable through both the map and the open file.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

/// Bodies at least this large are mapped (smaller ones are read into memory: a map costs
/// two system calls and a page-table entry per 4 KB, more than a copy of a small file).
pub(crate) const MAP_AT: u64 = 256 << 10;

struct Region {
    len: usize,
    file: Arc<File>,
}

static REGIONS: RwLock<BTreeMap<usize, Region>> = RwLock::new(BTreeMap::new());

/// The owner of a mapped body: unregisters the range when the last `Bytes` of it is gone.
struct Mapped {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let mut regions = REGIONS.write().unwrap_or_else(|p| p.into_inner());
        regions.remove(&(self.map.as_ptr() as usize));
    }
}

/// The file's whole content as a mapped `Bytes`.
pub(crate) fn map(file: File) -> std::io::Result<Bytes> {
    // SAFETY: a store object is written once to a temporary file and renamed into place; no
    // code writes to or truncates it afterwards, which is what a read-only map relies on.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let start = map.as_ptr() as usize;
    let len = map.len();
    {
        let mut regions = REGIONS.write().unwrap_or_else(|p| p.into_inner());
        regions.insert(
            start,
            Region {
                len,
                file: Arc::new(file),
            },
        );
    }
    Ok(Bytes::from_owner(Mapped { map }))
}

/// Where `slice` lives if it is part of a mapped body: the open file and the slice's offset
/// in it. `None` for any other memory.
pub fn mapped_file(slice: &[u8]) -> Option<(Arc<File>, u64)> {
    let addr = slice.as_ptr() as usize;
    let regions = REGIONS.read().unwrap_or_else(|p| p.into_inner());
    let (start, region) = regions.range(..=addr).next_back()?;
    let offset = addr - start;
    (offset + slice.len() <= region.len).then(|| (region.file.clone(), offset as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_of_a_mapped_body_name_their_file_and_offset_until_dropped() {
        let path = std::env::temp_dir().join(format!("hoist-static-map-{}", std::process::id()));
        let content: Vec<u8> = (0..=255u8).cycle().take(MAP_AT as usize).collect();
        std::fs::write(&path, &content).unwrap();
        let body = map(File::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&body[..], &content[..]);
        let (file, offset) = mapped_file(&body[1000..2000]).expect("registered");
        assert_eq!(offset, 1000);
        let mut read = vec![0u8; 1000];
        std::os::unix::fs::FileExt::read_exact_at(&*file, &mut read, offset).unwrap();
        assert_eq!(read, &content[1000..2000]);
        assert!(
            mapped_file(&content[..10]).is_none(),
            "heap memory is not mapped"
        );
        let tail = body.slice(body.len() - 10..);
        drop(body);
        assert!(mapped_file(&tail).is_some(), "a slice keeps the map alive");
        let addr = tail.as_ptr() as usize;
        drop(tail);
        let regions = REGIONS.read().unwrap();
        assert!(
            regions
                .range(..=addr)
                .next_back()
                .is_none_or(|(s, r)| addr >= s + r.len)
        );
    }
}
