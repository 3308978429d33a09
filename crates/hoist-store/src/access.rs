//! The access log's storage: per-service append-only segment files beside the database.
//!
//! One line per request, at the gateway's rate, is too much for SQLite: each line as a row
//! (a table with three indexes plus the search index) cost 40 % of the gateway's throughput
//! (BENCHMARKS.md). Here a batch of lines costs one `write`; retention deletes whole segments;
//! `--grep` scans them with memmem, which reads a service's whole cap (100 MB) in tens of ms.
//!
//! Lines share the id sequence of the lines in SQLite (the store hands out both), so a
//! service's logs read back in one order whichever file they came from.
//!
//! Layout: `DIR/<service>/<first id, 20 digits>-<created ms>.log`, one line per record:
//! `id TAB ts TAB instance-or-dash TAB text LF`. Every line in a segment was written before
//! the next segment was created, which is what time-based skipping and retention rely on:
//! a request's own time is when it arrived, so lines are not ordered by it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use memchr::memmem;

use crate::logs::{LogFilter, LogLine, LogStream};
use crate::{StoreError, now_ms};

/// A segment is closed at this size (or a tenth of the service's cap, if smaller, so the cap
/// is kept to within a tenth).
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
/// A line's text is cut here (a request line can be up to the gateway's 16 KB head-line
/// limit; nothing longer is worth keeping, and bounded lines keep crash repair to one read
/// of a segment's tail).
const MAX_TEXT: usize = 16 * 1024;
/// ... or at this age, so age-based retention removes an hour at a time.
const SEGMENT_AGE_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    first_id: i64,
    created_ms: i64,
    /// When it was last written to (its mtime when this process found it: the kernel's
    /// coarse clock, good for retention in hours, not for milliseconds).
    written_ms: i64,
    bytes: u64,
}

#[derive(Default)]
struct Segments {
    /// Oldest first.
    list: Vec<Segment>,
    /// The last segment, if this process created it: older ones are never appended to, so a
    /// line cut short by a crash stays at the very end of a closed segment.
    open: Option<File>,
}

impl Segments {
    fn bytes(&self) -> u64 {
        self.list.iter().map(|s| s.bytes).sum()
    }
}

pub(crate) struct AccessFiles {
    dir: PathBuf,
    services: Mutex<HashMap<String, Segments>>,
}

/// One line to append: the id the store gave it and what it says.
pub(crate) struct AccessLine<'a> {
    pub id: i64,
    pub ts: i64,
    pub instance: Option<&'a str>,
    pub text: &'a str,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::AccessLog(format!("{what} {}: {e}", path.display()))
}

/// Whether a service's access lines can be asked for at all by this filter.
fn wants_access(filter: &LogFilter) -> bool {
    filter.deployment.is_none()
        && !filter.build_only
        && (filter.streams.is_empty() || filter.streams.contains(&LogStream::Access))
}

impl AccessFiles {
    /// Opens (creating) the directory and reads which segments exist; returns the files and
    /// the highest line id in them.
    pub(crate) fn open(dir: PathBuf) -> Result<(AccessFiles, i64), StoreError> {
        std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        let mut services = HashMap::new();
        let mut max_id = 0;
        let entries = std::fs::read_dir(&dir).map_err(|e| io("reading", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io("reading", &dir, e))?;
            let Some(service) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let mut list = Vec::new();
            let files = std::fs::read_dir(entry.path()).map_err(|e| io("reading", &dir, e))?;
            for file in files {
                let file = file.map_err(|e| io("reading", &dir, e))?;
                let name = file.file_name();
                let Some((first_id, created_ms)) = name.to_str().and_then(parse_segment_name)
                else {
                    continue;
                };
                let meta = file.metadata().ok();
                let written_ms = meta
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(created_ms, |d| d.as_millis() as i64);
                list.push(Segment {
                    path: file.path(),
                    first_id,
                    created_ms,
                    written_ms,
                    bytes: meta.map_or(0, |m| m.len()),
                });
            }
            list.sort_by_key(|s| s.first_id);
            if let Some(last) = list.last_mut() {
                let (bytes, id) = repair_tail(&last.path)?;
                last.bytes = bytes;
                max_id = max_id.max(id.unwrap_or(last.first_id));
            }
            services.insert(service, Segments { list, open: None });
        }
        Ok((
            AccessFiles {
                dir,
                services: Mutex::new(services),
            },
            max_id,
        ))
    }

    fn services(&self) -> MutexGuard<'_, HashMap<String, Segments>> {
        // Segment bookkeeping is updated after each file operation; a panic between the two
        // leaves at worst a byte count off by one batch.
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends lines of one service (in id order), then drops its oldest segments while the
    /// access log is over `cap` bytes (the newest segment always stays).
    pub(crate) fn append(
        &self,
        service: &str,
        lines: &[AccessLine<'_>],
        cap: u64,
    ) -> Result<(), StoreError> {
        let Some(first) = lines.first() else {
            return Ok(());
        };
        // The name becomes a directory: anything but a service name is refused.
        if service.parse::<hoist_core::ServiceName>().is_err() {
            return Err(StoreError::AccessLog(format!(
                "'{service}' is not a service name"
            )));
        }
        let mut buf = Vec::with_capacity(lines.len() * 96);
        for l in lines {
            // Ids and times are written as text; the text cannot hold the separators (hyper
            // refuses control characters in a request line), but is made safe anyway.
            let _ = write!(buf, "{}\t{}\t{}\t", l.id, l.ts, l.instance.unwrap_or("-"));
            buf.extend(l.text.bytes().take(MAX_TEXT).map(|b| match b {
                b'\n' | b'\r' | b'\t' => b' ',
                b => b,
            }));
            buf.push(b'\n');
        }
        let mut services = self.services();
        let segments = services.entry(service.to_string()).or_default();
        let now = now_ms();
        let roll_at = (cap / 10).clamp(MIN_SEGMENT_BYTES, SEGMENT_BYTES);
        let needs_new = match (segments.open.as_ref(), segments.list.last()) {
            (Some(_), Some(last)) => {
                last.bytes >= roll_at || now - last.created_ms >= SEGMENT_AGE_MS
            }
            _ => true,
        };
        if needs_new {
            let dir = self.dir.join(service);
            std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
            // A restart within the same millisecond as the last segment's creation gets the
            // next id anyway, so names never collide.
            let path = dir.join(format!("{:020}-{now}.log", first.id));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(|e| io("creating", &path, e))?;
            segments.open = Some(file);
            segments.list.push(Segment {
                path,
                first_id: first.id,
                created_ms: now,
                written_ms: now,
                bytes: 0,
            });
        }
        let (Some(file), Some(last)) = (segments.open.as_mut(), segments.list.last_mut()) else {
            return Ok(());
        };
        file.write_all(&buf)
            .map_err(|e| io("appending to", &last.path, e))?;
        last.bytes += buf.len() as u64;
        last.written_ms = now;
        Self::trim_segments(segments, cap);
        Ok(())
    }

    /// Drops a service's oldest segments while its access log is over `cap` bytes (the newest
    /// segment always stays): for when the service's other lines grow into the cap.
    pub(crate) fn trim(&self, service: &str, cap: u64) {
        if let Some(segments) = self.services().get_mut(service) {
            Self::trim_segments(segments, cap);
        }
    }

    fn trim_segments(segments: &mut Segments, cap: u64) {
        while segments.list.len() > 1 && segments.bytes() > cap {
            let oldest = segments.list.remove(0);
            remove(&oldest.path);
        }
    }

    /// Bytes of access log kept for a service.
    pub(crate) fn bytes(&self, service: &str) -> u64 {
        self.services().get(service).map_or(0, Segments::bytes)
    }

    /// Removes whole segments whose every line is older than `cutoff_ms`; returns how many.
    pub(crate) fn prune_before(&self, cutoff_ms: i64) -> usize {
        let mut removed = 0;
        for segments in self.services().values_mut() {
            // A segment's lines were all written before the next one was created.
            let mut keep_from = 0;
            while keep_from + 1 < segments.list.len()
                && segments.list[keep_from + 1].created_ms < cutoff_ms
            {
                keep_from += 1;
            }
            for old in segments.list.drain(..keep_from) {
                remove(&old.path);
                removed += 1;
            }
            // The last one goes too when nothing was written to it since the cutoff.
            if let Some(last) = segments.list.last()
                && last.written_ms < cutoff_ms
            {
                remove(&last.path);
                segments.list.clear();
                segments.open = None;
                removed += 1;
            }
        }
        removed
    }

    pub(crate) fn remove_service(&self, service: &str) {
        if self.services().remove(service).is_some() || self.dir.join(service).exists() {
            let dir = self.dir.join(service);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, dir = %dir.display(), "removing an access log");
            }
        }
    }

    /// The service's access lines up to id `upto` that pass `filter`, in id order (the last
    /// `tail` of them when the filter has one).
    pub(crate) fn query(&self, service: &str, filter: &LogFilter, upto: i64) -> Vec<LogLine> {
        if !wants_access(filter) {
            return Vec::new();
        }
        let segments: Vec<Segment> = self
            .services()
            .get(service)
            .map(|s| s.list.clone())
            .unwrap_or_default();
        let finder = filter
            .grep
            .as_deref()
            .filter(|g| !g.is_empty())
            .map(memmem::Finder::new);
        // Newest first, so a tail stops reading early.
        let mut chunks: Vec<Vec<LogLine>> = Vec::new();
        let mut found = 0;
        for (i, seg) in segments.iter().enumerate().rev() {
            let next = segments.get(i + 1);
            if let (Some(after), Some(next)) = (filter.after_id, next)
                && next.first_id <= after + 1
            {
                break;
            }
            if let (Some(since), Some(next)) = (filter.since_ms, next)
                && next.created_ms < since
            {
                break;
            }
            let data = match std::fs::read(&seg.path) {
                Ok(d) => d,
                // Removed by retention since the list was copied.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(error = %e, path = %seg.path.display(), "reading an access log");
                    continue;
                }
            };
            let lines = scan(&data, service, filter, upto, finder.as_ref());
            found += lines.len();
            chunks.push(lines);
            if filter.tail.is_some_and(|t| found >= t) {
                break;
            }
        }
        let mut out: Vec<LogLine> = chunks.into_iter().rev().flatten().collect();
        if let Some(tail) = filter.tail
            && out.len() > tail
        {
            out.drain(..out.len() - tail);
        }
        out
    }
}

/// The lines of one segment that pass the filter. With a search, only the lines around a hit
/// of the searched text are parsed.
fn scan(
    data: &[u8],
    service: &str,
    filter: &LogFilter,
    upto: i64,
    finder: Option<&memmem::Finder<'_>>,
) -> Vec<LogLine> {
    let mut out = Vec::new();
    let mut consider = |line: &[u8]| {
        if let Some(l) = parse_line(line, service)
            && l.id <= upto
            && filter.matches(&l)
        {
            out.push(l);
        }
    };
    match finder {
        Some(finder) => {
            let mut pos = 0;
            while let Some(hit) = finder.find(&data[pos..]) {
                let hit = pos + hit;
                let start = memchr::memrchr(b'\n', &data[..hit]).map_or(0, |i| i + 1);
                let Some(end) = memchr::memchr(b'\n', &data[hit..]).map(|i| hit + i) else {
                    break;
                };
                consider(&data[start..end]);
                pos = end + 1;
            }
        }
        None => {
            // The last piece without a newline is a line still being written.
            let complete = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
            for line in data[..complete].split(|b| *b == b'\n') {
                if !line.is_empty() {
                    consider(line);
                }
            }
        }
    }
    out
}

fn parse_line(line: &[u8], service: &str) -> Option<LogLine> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(4, '\t');
    let id = parts.next()?.parse().ok()?;
    let ts = parts.next()?.parse().ok()?;
    let instance = parts.next()?;
    let text = parts.next()?;
    Some(LogLine {
        id,
        service: service.to_string(),
        deployment: None,
        instance: (instance != "-").then(|| instance.to_string()),
        stream: LogStream::Access,
        ts,
        line: text.to_string(),
    })
}

fn parse_segment_name(name: &str) -> Option<(i64, i64)> {
    let (id, created) = name.strip_suffix(".log")?.split_once('-')?;
    Some((id.parse().ok()?, created.parse().ok()?))
}

/// Cuts a line left half-written by a crash off the end of a segment; returns the segment's
/// size and the id of its last line.
fn repair_tail(path: &Path) -> Result<(u64, Option<i64>), StoreError> {
    const TAIL: u64 = 64 * 1024;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io("opening", path, e))?;
    let len = file.metadata().map_err(|e| io("reading", path, e))?.len();
    let from = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(from))
        .map_err(|e| io("reading", path, e))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(|e| io("reading", path, e))?;
    let Some(last_nl) = memchr::memrchr(b'\n', &tail) else {
        // No line end at all: a segment whose first write was cut short.
        if from == 0 {
            file.set_len(0).map_err(|e| io("repairing", path, e))?;
            return Ok((0, None));
        }
        return Ok((len, None));
    };
    let complete = from + last_nl as u64 + 1;
    if complete < len {
        file.set_len(complete)
            .map_err(|e| io("repairing", path, e))?;
    }
    let line_start = match memchr::memrchr(b'\n', &tail[..last_nl]) {
        Some(i) => i + 1,
        None if from == 0 => 0,
        // The last line began before the part read (lines are capped well below it, so
        // only a file written otherwise gets here): read it all.
        None => {
            let whole = std::fs::read(path).map_err(|e| io("reading", path, e))?;
            let end = complete as usize - 1;
            let start = memchr::memrchr(b'\n', &whole[..end]).map_or(0, |i| i + 1);
            return Ok((complete, last_id(&whole[start..end])));
        }
    };
    Ok((complete, last_id(&tail[line_start..last_nl])))
}

/// The id at the front of a segment line.
fn last_id(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.split('\t').next())
        .and_then(|id| id.parse().ok())
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %path.display(), "removing an access log segment");
    }
}
