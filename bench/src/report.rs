//! The results: one table (Markdown, printed) and the same as JSON in `bench/results/`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::Args;
use crate::load::{Dist, LoadResult};

/// Peers in column order.
pub const PEERS: [&str; 4] = ["litellm", "vllm-router", "sglang-router", "portkey"];

/// One table cell.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cell(pub String);

impl Cell {
    /// p50 / p99 / p99.9 of a distribution.
    pub fn dist(d: &Dist) -> Self {
        Self(format!("{} / {} / {}", d.p50, d.p99, d.p999))
    }
    /// Three numbers.
    pub fn triple(a: [i64; 3]) -> Self {
        Self(format!("{} / {} / {}", a[0], a[1], a[2]))
    }
    /// Free text.
    pub fn text(s: String) -> Self {
        Self(s)
    }
}

/// One row.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    /// Stable id, for comparisons across commits.
    pub id: String,
    /// What the row measures, with its unit.
    pub label: String,
    /// Direct call to the mock upstream.
    pub direct: Option<Cell>,
    /// Through Switchyard.
    pub switchyard: Option<Cell>,
    /// Switchyard minus direct, per percentile.
    pub added: Option<Cell>,
    /// The target from issue 9.
    pub target: Option<String>,
    /// Whether it is met.
    pub met: Option<bool>,
    /// Failed requests (or edits) of the Switchyard measurement.
    pub errors: u64,
    /// The main number, for comparisons.
    pub value: Option<f64>,
    /// Peer cells by peer name.
    pub peers: BTreeMap<String, String>,
}

impl Row {
    /// A new row.
    pub fn new(id: &str, label: &str) -> Self {
        Self {
            id: id.into(),
            label: label.into(),
            ..Default::default()
        }
    }
    /// Sets the direct cell.
    pub fn direct(mut self, c: Cell) -> Self {
        self.direct = Some(c);
        self
    }
    /// Sets the Switchyard cell.
    pub fn gateway(mut self, c: Cell) -> Self {
        self.switchyard = Some(c);
        self
    }
    /// Sets the added cell.
    pub fn added(mut self, c: Cell) -> Self {
        self.added = Some(c);
        self
    }
    /// Sets the target and whether it is met.
    pub fn target(mut self, t: &str, met: bool) -> Self {
        self.target = Some(t.into());
        self.met = Some(met);
        self
    }
    /// Sets the error count.
    pub fn errors(mut self, n: u64) -> Self {
        self.errors = n;
        self
    }
    /// Sets the main number.
    pub fn value(mut self, v: f64) -> Self {
        self.value = Some(v);
        self
    }
}

/// Everything measured in a run.
#[derive(Debug)]
pub struct Report {
    meta: Value,
    rows: Vec<Row>,
    raw: BTreeMap<String, Value>,
    skipped: BTreeMap<String, String>,
    /// Direct-call results by row id, for the peers' added latency.
    pub baselines: BTreeMap<String, LoadResult>,
}

impl Report {
    /// Starts a report.
    pub fn new(args: &Args, load_before: &str) -> Self {
        Self {
            meta: json!({
                "date": jiff::Timestamp::now().to_string(),
                "git_sha": args.git_sha,
                "machine": args.machine,
                "load_average_before": load_before,
                "gateway_cpu": args.gateway_cpu,
                "client_cpu": args.client_cpu,
                "seconds_per_phase": args.seconds,
                "rates": args.rates,
                "connections": args.connections,
                "streams": args.streams,
                "added_latency": "gateway minus direct-to-mock latency at the same percentile, same run",
            }),
            rows: Vec::new(),
            raw: BTreeMap::new(),
            skipped: BTreeMap::new(),
            baselines: BTreeMap::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Keeps raw data for the JSON.
    pub fn raw(&mut self, key: &str, value: Value) {
        self.raw.insert(key.into(), value);
    }

    /// Sets a peer's cell in a row.
    pub fn peer(&mut self, row: &str, peer: &str, text: String) {
        if let Some(r) = self.rows.iter_mut().find(|r| r.id == row) {
            r.peers.insert(peer.into(), text);
        }
    }

    /// Records that a peer was skipped, and why.
    pub fn skip_peer(&mut self, peer: &str, reason: &str) {
        self.skipped.insert(peer.into(), reason.into());
    }

    /// Notes the load average at the end.
    pub fn finish(&mut self, load_after: &str) {
        if let Some(m) = self.meta.as_object_mut() {
            m.insert("load_average_after".into(), json!(load_after));
        }
    }

    /// The Markdown table, with notes.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let peers: Vec<&str> = PEERS
            .iter()
            .copied()
            .filter(|p| {
                self.rows.iter().any(|r| r.peers.contains_key(*p)) || self.skipped.contains_key(*p)
            })
            .collect();
        out.push_str("| measurement | direct to mock | Switchyard | added | target | met |");
        for p in &peers {
            out.push_str(&format!(" {p} |"));
        }
        out.push_str("\n|---|---|---|---|---|---|");
        for _ in &peers {
            out.push_str("---|");
        }
        out.push('\n');
        let c = |c: &Option<Cell>| c.as_ref().map(|c| c.0.clone()).unwrap_or_default();
        for r in &self.rows {
            let errors = if r.errors > 0 {
                format!(" ({} errors)", r.errors)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {} | {} | {}{} | {} | {} | {} |",
                r.label,
                c(&r.direct),
                c(&r.switchyard),
                errors,
                c(&r.added),
                r.target.clone().unwrap_or_default(),
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                }
            ));
            for p in &peers {
                let cell = match (r.peers.get(*p), self.skipped.contains_key(*p)) {
                    (Some(v), _) => v.clone(),
                    (None, true) => "skipped".into(),
                    (None, false) => String::new(),
                };
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
        out.push('\n');
        for (p, why) in &self.skipped {
            out.push_str(&format!("- {p} skipped: {why}\n"));
        }
        out.push_str(&format!(
            "- load average (1, 5, 15 min): before {}, after {}\n",
            self.meta["load_average_before"].as_str().unwrap_or(""),
            self.meta["load_average_after"].as_str().unwrap_or("")
        ));
        out
    }

    /// Writes `DIR/<date>-<sha>.json` and `DIR/latest.json` (nothing when `dir` is empty).
    pub fn write(&self, dir: &str, sha: &str) -> anyhow::Result<()> {
        if dir.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(dir)?;
        let doc = json!({"meta": self.meta, "rows": self.rows, "skipped_peers": self.skipped,
            "raw": self.raw, "table": self.table()});
        let text = serde_json::to_string_pretty(&doc)?;
        let date = jiff::Zoned::now().strftime("%Y-%m-%dT%H%M").to_string();
        let short: String = sha.chars().take(12).collect();
        let path = format!("{dir}/{date}-{short}.json");
        std::fs::write(&path, &text).with_context(|| format!("writing {path}"))?;
        std::fs::write(format!("{dir}/latest.json"), &text)?;
        eprintln!("results written to {path} and {dir}/latest.json");
        Ok(())
    }
}
