//! What the CLI writes on stdout: lines, tables, JSON documents, timestamps and ages, each
//! one way for every command.
//!
//! Every line goes through [`line`] (the `outln!` macro), never `println!`: `println!` panics
//! when stdout is a pipe whose reader has gone (`hoist logs shop | head -1`), while [`line`]
//! returns [`StdoutClosed`], which `main` turns into a quiet exit 0 as `cat` or `grep` do.
//! Stderr gets `errln!`, which drops what cannot be written.

use std::fmt;
use std::io::Write;

use comfy_table::{CellAlignment, Table};

/// Writes one line (format arguments as `println!`) to stdout; `?` it.
macro_rules! outln {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to stderr, as `eprintln!` does but without its panic when stderr is
/// closed: a message nobody can read is dropped.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
pub(crate) use errln;

/// Stdout was closed by its reader: nothing more can be shown, and that is not a failure.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

pub(crate) fn line(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                anyhow::Error::new(StdoutClosed)
            } else {
                anyhow::Error::new(e).context("writing to stdout")
            }
        })
}

/// Prints `value` as one JSON document (pretty, for people reading a script's input too).
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    outln!("{text}")
}

/// Prints `value` as one line of NDJSON (for streams: one document per item).
pub(crate) fn ndjson_line<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    outln!("{text}")
}

/// A table for people: no borders, two spaces between columns, the columns named in `right`
/// (numbers) aligned right.
pub(crate) fn table(header: &[&str], right: &[usize]) -> Table {
    let mut t = Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header(header.to_vec());
    for (i, col) in t.column_iter_mut().enumerate() {
        col.set_padding((0, 2));
        if right.contains(&i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Prints a table, lines without trailing blanks.
pub(crate) fn print_table(t: &Table) -> anyhow::Result<()> {
    for l in t.lines() {
        outln!("{}", l.trim_end())?;
    }
    Ok(())
}

/// An instant the API gives as epoch milliseconds, as RFC 3339 in UTC with milliseconds
/// (`2025-11-25T20:00:00.123Z`).
pub(crate) fn timestamp(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => format!("{ms} ms since the epoch"),
    }
}

/// A duration, in the one way the platform prints them everywhere.
pub(crate) fn duration(ms: u64) -> String {
    hoist_core::duration_text(ms)
}

/// How long ago an instant (epoch milliseconds) was, as a [`duration`].
pub(crate) fn age(ms: i64) -> String {
    let now = jiff::Timestamp::now().as_millisecond();
    duration(u64::try_from(now - ms).unwrap_or(0))
}

/// The first line of a possibly multi-line text (reasons and exit causes), for a table cell.
pub(crate) fn first_line(text: Option<&str>) -> &str {
    text.unwrap_or("").lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_764_100_800_123), "2025-11-25T20:00:00.123Z");
        assert_eq!(timestamp(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn tables_align_columns_without_borders_or_trailing_blanks() {
        let mut t = table(&["NAME", "COUNT", "NOTE"], &[1]);
        t.add_row(vec!["a", "5", ""]);
        t.add_row(vec!["longer", "123", "x"]);
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
        assert_eq!(
            lines,
            ["NAME    COUNT  NOTE", "a           5", "longer    123  x"]
        );
    }
}
