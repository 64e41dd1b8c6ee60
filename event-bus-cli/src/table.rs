//! Plain-text tables and the small formats they use.

use std::io::Write;

/// A table: a header row, then rows, columns padded to their widest cell.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, cell) in cells.enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = widths.get(i).copied().unwrap_or(0)
                    - cell
                        .chars()
                        .count()
                        .min(widths.get(i).copied().unwrap_or(0));
                text.extend(std::iter::repeat_n(' ', pad));
            }
            writeln!(out, "{}", text.trim_end())
        };
        line(out, &mut self.header.iter().copied())?;
        for row in &self.rows {
            line(out, &mut row.iter().map(String::as_str))?;
        }
        Ok(())
    }
}

/// A duration in milliseconds, short: `850ms`, `12.4s`, `3m05s`, `2h10m`, `3d4h`.
pub(crate) fn millis(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..=86_399_999 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A count that Redis may not know.
pub(crate) fn maybe(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(millis(850), "850ms");
        assert_eq!(millis(12_400), "12.4s");
        assert_eq!(millis(185_000), "3m05s");
        assert_eq!(millis(7_800_000), "2h10m");
        assert_eq!(maybe(None), "?");
        let mut t = Table::new(vec!["A", "LONGER"]);
        t.row(vec!["xyz".to_owned(), "1".to_owned()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&out), "A    LONGER\nxyz  1\n");
    }
}
