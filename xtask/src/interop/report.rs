//! Result rows: the table on stdout and the `--json FILE` array.

use std::fmt;
use std::path::Path;

use serde_json::json;

use crate::error::Error;

/// How a row ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Observed what was expected.
    Pass,
    /// Observed something else, or the run broke.
    Fail,
    /// A prerequisite is missing; the detail says how to install it.
    Skip,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        })
    }
}

/// One line of the interop table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Scenario name (what `--only` selects).
    pub name: String,
    /// TLS version(s) exercised.
    pub protocol: String,
    /// What should happen.
    pub expected: String,
    /// What happened.
    pub observed: String,
    /// PASS/FAIL/SKIP.
    pub status: Status,
    /// Why it failed or was skipped (empty when it passed).
    pub detail: String,
}

/// Prints the table to stdout, then the details of rows that did not pass.
pub fn print_table(rows: &[Row]) {
    let headers = ["scenario", "TLS version", "expected", "observed", "result"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.protocol.clone(),
                r.expected.clone(),
                r.observed.clone(),
                r.status.to_string(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let padded: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join(" | ").trim_end());
    };
    line(&headers.map(String::from));
    println!("{}", widths.map(|w| "-".repeat(w)).join("-+-"));
    for row in &cells {
        line(row);
    }
    for r in rows.iter().filter(|r| r.status != Status::Pass) {
        println!("\n{} {} ({}): {}", r.status, r.name, r.protocol, r.detail);
    }
    let count = |s| rows.iter().filter(|r| r.status == s).count();
    println!(
        "\n{} PASS, {} FAIL, {} SKIP",
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip)
    );
}

/// Writes the rows as a JSON array of `{name, protocol, expected, observed,
/// status, detail}`.
pub fn write_json(rows: &[Row], file: &Path) -> Result<(), Error> {
    let array: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "protocol": r.protocol,
                "expected": r.expected,
                "observed": r.observed,
                "status": r.status.to_string(),
                "detail": r.detail,
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&array).unwrap_or_else(|_| "[]".into());
    std::fs::write(file, text + "\n").map_err(|source| Error::File {
        path: file.display().to_string(),
        source,
    })
}
