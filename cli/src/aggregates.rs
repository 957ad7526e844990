//! Bucket-level sums: what the unit-level statistics need from the records,
//! one cell per (experiment, assigned variant, bucket, UTC day).
//!
//! `llm-ab report --records` computes them from the access-log records
//! (`crate::records`); `analysis/aggregate.sql` computes the very same rows
//! in a warehouse, and `--aggregates` reads that query's result (CSV with a
//! header, or JSON lines) back here. Both end in [`Aggregates`], so both
//! give the same report. Every sum is an integer (cost in nano-USD, outcome
//! values in millionths): integer sums do not depend on the order a
//! warehouse adds rows in.

use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::BufRead;

/// Upper bounds (exclusive, ms) of the latency histogram's bins: six per
/// octave, `round(2^(k/6))` for k = 0..=120 without repeats (1 ms to about
/// 17.5 minutes; bins about 12 % wide). A last bin holds everything at or
/// above the last bound. `analysis/aggregate.sql` has one `latency_lt_<bound>`
/// column per bound (a test checks they agree).
pub const LATENCY_EDGES: [u64; 110] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 16, 18, 20, 23, 25, 29, 32, 36, 40, 45, 51, 57, 64,
    72, 81, 91, 102, 114, 128, 144, 161, 181, 203, 228, 256, 287, 323, 362, 406, 456, 512, 575,
    645, 724, 813, 912, 1024, 1149, 1290, 1448, 1625, 1825, 2048, 2299, 2580, 2896, 3251, 3649,
    4096, 4598, 5161, 5793, 6502, 7298, 8192, 9195, 10321, 11585, 13004, 14596, 16384, 18390,
    20643, 23170, 26008, 29193, 32768, 36781, 41285, 46341, 52016, 58386, 65536, 73562, 82570,
    92682, 104032, 116772, 131072, 147123, 165140, 185364, 208064, 233544, 262144, 294247, 330281,
    370728, 416128, 467088, 524288, 588493, 660561, 741455, 832255, 934175, 1048576,
];

/// Bins of the latency histogram (one more than bounds).
pub const LATENCY_BINS: usize = LATENCY_EDGES.len() + 1;

/// The bin of a latency in ms.
pub fn latency_bin(ms: u64) -> usize {
    LATENCY_EDGES.partition_point(|&e| e <= ms)
}

/// The most a cost or outcome can add up to before an integer sum would
/// overflow is far beyond any real experiment; sums saturate rather than wrap.
fn add(a: &mut i64, b: i64) {
    *a = a.saturating_add(b);
}

/// The sums of one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Requests.
    pub requests: u64,
    /// Requests by outcome.
    pub successes: u64,
    /// `error` outcomes.
    pub errors: u64,
    /// `refusal` outcomes.
    pub refusals: u64,
    /// `blocked` outcomes.
    pub blocked: u64,
    /// `invalid` outcomes.
    pub invalid: u64,
    /// `fallback` outcomes (the treatment failed, control answered).
    pub fallbacks: u64,
    /// Requests whose output schema was checked.
    pub schema_checked: u64,
    /// Of them, those that passed.
    pub schema_passed: u64,
    /// Estimated cost, nano-USD (each record's rounded).
    pub cost_nano_usd: i64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Latency, ms.
    pub latency_ms: u64,
    /// Unit ids first seen (in this experiment and variant) in this cell.
    pub new_units: u64,
    /// Latency histogram, [`LATENCY_BINS`] bins (a cell's count fits 32 bits).
    pub latency_bins: Vec<u32>,
    /// Outcome metric index → Σ value in millionths.
    pub outcomes: Vec<(u32, i64)>,
}

impl Default for Cell {
    fn default() -> Cell {
        Cell {
            requests: 0,
            successes: 0,
            errors: 0,
            refusals: 0,
            blocked: 0,
            invalid: 0,
            fallbacks: 0,
            schema_checked: 0,
            schema_passed: 0,
            cost_nano_usd: 0,
            tokens_in: 0,
            tokens_out: 0,
            latency_ms: 0,
            new_units: 0,
            latency_bins: vec![0; LATENCY_BINS],
            outcomes: Vec::new(),
        }
    }
}

impl Cell {
    /// Adds `micro` to outcome metric `metric`.
    pub fn add_outcome(&mut self, metric: u32, micro: i64) {
        match self.outcomes.iter_mut().find(|(m, _)| *m == metric) {
            Some((_, v)) => add(v, micro),
            None => self.outcomes.push((metric, micro)),
        }
    }

    /// Adds every sum of `other`.
    pub fn merge(&mut self, other: &Cell) {
        self.requests += other.requests;
        self.successes += other.successes;
        self.errors += other.errors;
        self.refusals += other.refusals;
        self.blocked += other.blocked;
        self.invalid += other.invalid;
        self.fallbacks += other.fallbacks;
        self.schema_checked += other.schema_checked;
        self.schema_passed += other.schema_passed;
        add(&mut self.cost_nano_usd, other.cost_nano_usd);
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.latency_ms += other.latency_ms;
        self.new_units += other.new_units;
        for (a, b) in self.latency_bins.iter_mut().zip(&other.latency_bins) {
            *a = a.saturating_add(*b);
        }
        for &(m, v) in &other.outcomes {
            self.add_outcome(m, v);
        }
    }

    /// Σ of outcome metric `metric`, in millionths.
    pub fn outcome(&self, metric: u32) -> i64 {
        self.outcomes
            .iter()
            .find(|(m, _)| *m == metric)
            .map_or(0, |(_, v)| *v)
    }
}

/// Where a cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Index into [`Aggregates::experiments`].
    pub experiment: u32,
    /// Index into [`Aggregates::variants`].
    pub variant: u32,
    /// The bucket, 0..9999.
    pub bucket: u16,
    /// Days since 1970-01-01 (UTC) of the requests' start.
    pub day: i64,
}

/// Names interned to small indices, in order of first sight.
#[derive(Debug, Default, Clone)]
pub struct Names(Vec<String>);

impl Names {
    /// The index of `name`, added when new. Few names (experiments,
    /// variants, outcome metrics): a scan beats hashing.
    pub fn index(&mut self, name: &str) -> u32 {
        match self.0.iter().position(|n| n == name) {
            Some(i) => i as u32,
            None => {
                self.0.push(name.to_string());
                (self.0.len() - 1) as u32
            }
        }
    }

    /// Every name, by index.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The name at `i`.
    pub fn name(&self, i: u32) -> &str {
        self.0.get(i as usize).map_or("", String::as_str)
    }
}

/// Every cell, with the names its keys index.
#[derive(Debug, Default)]
pub struct Aggregates {
    /// Experiment ids.
    pub experiments: Names,
    /// Variant names (of every experiment).
    pub variants: Names,
    /// Outcome metric names.
    pub metrics: Names,
    /// The cells.
    pub cells: HashMap<Key, Cell>,
}

impl Aggregates {
    /// The cell at `key`, created empty when new.
    pub fn cell(&mut self, key: Key) -> &mut Cell {
        self.cells.entry(key).or_default()
    }
}

/// What reading an aggregates file skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadCounts {
    /// Rows read.
    pub rows: u64,
    /// Rows skipped: not parseable, or without a valid bucket.
    pub bad: u64,
}

/// The columns of `analysis/aggregate.sql`'s result, in its order.
pub const COLUMNS: [&str; 20] = [
    "experiment_id",
    "variant",
    "bucket",
    "utc_day",
    "outcome_metric",
    "requests",
    "successes",
    "errors",
    "refusals",
    "blocked",
    "invalid",
    "fallbacks",
    "schema_checked",
    "schema_passed",
    "cost_nano_usd",
    "tokens_in",
    "tokens_out",
    "latency_ms",
    "new_units",
    "outcome_micro",
];

/// Every column by name, in the order the reader addresses them:
/// [`COLUMNS`], then one `latency_lt_<bound>` per [`LATENCY_EDGES`].
fn canonical_columns() -> Vec<String> {
    COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(LATENCY_EDGES.iter().map(|e| format!("latency_lt_{e}")))
        .collect()
}

/// Position of `name` in [`COLUMNS`].
fn col(name: &str) -> usize {
    COLUMNS.iter().position(|c| *c == name).unwrap_or(0)
}

/// One row: the text of a column by its canonical position (`None` when
/// absent, null or empty).
trait Row {
    fn get(&self, column: usize) -> Option<Cow<'_, str>>;
}

/// A JSON-lines row, read by name.
struct JsonRow<'a> {
    names: &'a [String],
    map: serde_json::Map<String, Value>,
}

impl Row for JsonRow<'_> {
    fn get(&self, column: usize) -> Option<Cow<'_, str>> {
        match self.map.get(self.names.get(column)?)? {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(Cow::Borrowed(s)),
            v => Some(Cow::Owned(v.to_string())),
        }
    }
}

/// A CSV row: its fields, and where each canonical column is among them.
struct CsvRow<'a> {
    at: &'a [usize],
    fields: Vec<Cow<'a, str>>,
}

impl Row for CsvRow<'_> {
    fn get(&self, column: usize) -> Option<Cow<'_, str>> {
        let f = self.fields.get(*self.at.get(column)?)?;
        (!f.is_empty()).then(|| Cow::Borrowed(&**f))
    }
}

/// An integer cell: JSON number, a quoted one (ClickHouse's JSONEachRow
/// quotes 64-bit integers), or a float written with `.0` (BigQuery's CSV).
fn int(row: &dyn Row, column: usize) -> Result<i64, String> {
    let Some(text) = row.get(column) else {
        return Ok(0);
    };
    let t = text.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Ok(v);
    }
    match t.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
        _ => Err(format!("column {column}: {t:?} is not an integer")),
    }
}

fn count(row: &dyn Row, column: usize) -> Result<u64, String> {
    u64::try_from(int(row, column)?).map_err(|_| format!("column {column}: negative"))
}

/// Splits one CSV record (RFC 4180 quoting; a record never spans lines in
/// this query's result: no value holds a line break). Borrowed unless a
/// field is quoted.
fn csv_fields(line: &str) -> Vec<Cow<'_, str>> {
    if !line.contains('"') {
        return line.split(',').map(Cow::Borrowed).collect();
    }
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => out.push(Cow::Owned(std::mem::take(&mut field))),
            (c, _) => field.push(c),
        }
    }
    out.push(Cow::Owned(field));
    out
}

/// Checks a header (or a JSON row's keys) against this version's columns.
fn check_columns(names: &[&str]) -> Result<(), String> {
    let mut edges: Vec<u64> = names
        .iter()
        .filter_map(|n| n.strip_prefix("latency_lt_")?.parse().ok())
        .collect();
    edges.sort_unstable();
    if edges != LATENCY_EDGES {
        return Err(format!(
            "the aggregates have {} latency_lt_* columns that are not this llm-ab's {} bounds: run the analysis/aggregate.sql of this version",
            edges.len(),
            LATENCY_EDGES.len()
        ));
    }
    for c in COLUMNS {
        if !names.contains(&c) {
            return Err(format!("the aggregates lack the column {c}"));
        }
    }
    Ok(())
}

/// Adds one row to `agg`.
fn add_row(agg: &mut Aggregates, row: &dyn Row) -> Result<(), String> {
    let experiment = row.get(col("experiment_id")).ok_or("no experiment_id")?;
    let variant = row.get(col("variant")).ok_or("no variant")?;
    let bucket = int(row, col("bucket"))?;
    let bucket = u16::try_from(bucket)
        .ok()
        .filter(|b| *b < 10_000)
        .ok_or("bucket out of range")?;
    let key = Key {
        experiment: agg.experiments.index(&experiment),
        variant: agg.variants.index(&variant),
        bucket,
        day: int(row, col("utc_day"))?,
    };
    if let Some(metric) = row.get(col("outcome_metric")) {
        let micro = int(row, col("outcome_micro"))?;
        let m = agg.metrics.index(&metric);
        agg.cell(key).add_outcome(m, micro);
        return Ok(());
    }
    let n = |name: &str| count(row, col(name));
    let mut c = Cell {
        requests: n("requests")?,
        successes: n("successes")?,
        errors: n("errors")?,
        refusals: n("refusals")?,
        blocked: n("blocked")?,
        invalid: n("invalid")?,
        fallbacks: n("fallbacks")?,
        schema_checked: n("schema_checked")?,
        schema_passed: n("schema_passed")?,
        cost_nano_usd: int(row, col("cost_nano_usd"))?,
        tokens_in: n("tokens_in")?,
        tokens_out: n("tokens_out")?,
        latency_ms: n("latency_ms")?,
        new_units: n("new_units")?,
        ..Cell::default()
    };
    // Cumulative `latency_lt_<bound>` counts back into bins.
    let mut below = 0;
    for i in 0..LATENCY_EDGES.len() {
        let lt = count(row, COLUMNS.len() + i)?;
        let bin = lt.checked_sub(below).ok_or("latency_lt_* not cumulative")?;
        c.latency_bins[i] = u32::try_from(bin).map_err(|_| "a latency bin over 2^32")?;
        below = lt;
    }
    let last = c
        .requests
        .checked_sub(below)
        .ok_or("latency_lt_* above requests")?;
    c.latency_bins[LATENCY_EDGES.len()] =
        u32::try_from(last).map_err(|_| "a latency bin over 2^32")?;
    agg.cell(key).merge(&c);
    Ok(())
}

/// Reads `analysis/aggregate.sql`'s result: CSV with a header row, or JSON
/// lines (told apart by the first character). A row that cannot be read is
/// counted and skipped; a header without this version's columns is an error.
pub fn read(input: impl BufRead, agg: &mut Aggregates) -> Result<ReadCounts, String> {
    let names = canonical_columns();
    let mut counts = ReadCounts::default();
    // CSV: where each canonical column is in the header.
    let mut at: Option<Vec<usize>> = None;
    let mut json: Option<bool> = None;
    for line in input.lines() {
        let line = line.map_err(|e| format!("cannot read the aggregates: {e}"))?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let is_json = *json.get_or_insert(line.trim_start().starts_with('{'));
        if !is_json && at.is_none() {
            let header = csv_fields(line);
            let header: Vec<&str> = header.iter().map(|h| &**h).collect();
            check_columns(&header)?;
            at = Some(
                names
                    .iter()
                    .map(|n| header.iter().position(|h| h == n).unwrap_or(usize::MAX))
                    .collect(),
            );
            continue;
        }
        counts.rows += 1;
        let result = if is_json {
            match serde_json::from_str::<serde_json::Map<String, Value>>(line) {
                Ok(map) => {
                    if counts.rows == 1 {
                        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                        check_columns(&keys)?;
                    }
                    add_row(agg, &JsonRow { names: &names, map })
                }
                Err(e) => Err(e.to_string()),
            }
        } else {
            let row = CsvRow {
                at: at.as_deref().unwrap_or(&[]),
                fields: csv_fields(line),
            };
            add_row(agg, &row)
        };
        if result.is_err() {
            counts.bad += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_edges_are_six_per_octave() {
        let mut want: Vec<u64> = (0..=120)
            .map(|k| 2f64.powf(f64::from(k) / 6.0).round() as u64)
            .collect();
        want.dedup();
        assert_eq!(want, LATENCY_EDGES);
        assert_eq!(latency_bin(0), 0);
        assert_eq!(latency_bin(1), 1);
        assert_eq!(latency_bin(12), 11, "[11, 13)");
        assert_eq!(latency_bin(13), 12);
        assert_eq!(latency_bin(5_000_000), LATENCY_EDGES.len());
    }

    #[test]
    fn the_shipped_query_has_every_column_in_order() {
        let sql = include_str!("../../analysis/aggregate.sql");
        // The output columns: the `AS name` of the final SELECT.
        let tail = sql.rsplit("-- The result").next().unwrap_or("");
        let names: Vec<String> = tail
            .split(" AS ")
            .skip(1)
            .filter_map(|s| {
                let name: String = s
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()).then_some(name)
            })
            .collect();
        let mut want: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        want.extend(LATENCY_EDGES.iter().map(|e| format!("latency_lt_{e}")));
        assert_eq!(names, want);
    }

    #[test]
    fn csv_fields_follow_rfc_4180() {
        assert_eq!(
            csv_fields("a,,\"b,c\",\"d\"\"e\""),
            ["a", "", "b,c", "d\"e"]
        );
    }
}
