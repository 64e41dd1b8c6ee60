//! Statistics (median and min–max over runs, latency percentiles) and the printed table.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Latency percentiles of one run, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (sorted in place); `None` when empty.
    pub fn of(samples: &mut [f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let k = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[k.clamp(1, samples.len()) - 1]
        };
        Some(Self {
            p50: rank(50.0),
            p99: rank(99.0),
            max: samples[samples.len() - 1],
            samples: samples.len(),
        })
    }
}

/// Median and min–max of a figure over runs.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` when there are no values.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// `12345.6` → `12,346`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// A rate with its spread: `10,512/s (10,400–10,600)`, or just `10,512/s` for one run.
pub fn rate_cell(s: Option<Spread>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.min == s.max => format!("{}/s", thousands(s.median)),
        Some(s) => format!(
            "{}/s ({}–{})",
            thousands(s.median),
            thousands(s.min),
            thousands(s.max)
        ),
    }
}

/// A latency in ms with its spread.
pub fn ms_cell(s: Option<Spread>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.min == s.max => format!("{:.2}", s.median),
        Some(s) => format!("{:.2} ({:.2}–{:.2})", s.median, s.min, s.max),
    }
}

/// A size in KiB, shown in MiB, with its spread.
pub fn mib_cell(s: Option<Spread>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.min == s.max => format!("{:.1} MiB", s.median / 1024.0),
        Some(s) => format!(
            "{:.1} MiB ({:.1}–{:.1})",
            s.median / 1024.0,
            s.min / 1024.0,
            s.max / 1024.0
        ),
    }
}

/// A plain text table with a header row; columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(header: I) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders as a Markdown-compatible table.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0usize; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let line = |row: &[String]| {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let pad = w - cell.chars().count();
                let _ = write!(s, " {cell}{} |", " ".repeat(pad));
            }
            s
        };
        let mut out = line(&self.header);
        out.push('\n');
        out.push('|');
        for w in &width {
            out.push_str(&"-".repeat(w + 2));
            out.push('|');
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&mut v).unwrap_or_else(|| panic!("non-empty"));
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn spread_median() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap_or_else(|| panic!("non-empty"));
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0]).unwrap_or_else(|| panic!("non-empty"));
        assert_eq!(s.median, 2.5);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }
}
