//! `switchyard-check`: compiles a folder (or files) of Switchyard manifests offline, with the
//! same compiler as the operator, and prints every diagnostic. Exit status 1 when any object
//! has an error, so it can gate a GitOps pipeline. `--snapshot` prints the routing snapshot
//! (credentials redacted).

#![allow(clippy::print_stdout, clippy::print_stderr)] // a CLI: printing is its job

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use switchyard_crds::compile::{Inventory, Severity, compile};

const USAGE: &str = "usage: switchyard-check [--snapshot] [--quiet] PATH...";

fn main() -> anyhow::Result<ExitCode> {
    let mut paths = Vec::new();
    let (mut print_snapshot, mut quiet) = (false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--snapshot" => print_snapshot = true,
            "--quiet" | "-q" => quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            a if a.starts_with('-') => anyhow::bail!("unknown flag {a}\n{USAGE}"),
            a => paths.push(PathBuf::from(a)),
        }
    }
    if paths.is_empty() {
        anyhow::bail!("{USAGE}");
    }
    let mut inventory = Inventory::default();
    let mut files = Vec::new();
    for p in &paths {
        files.extend(
            switchyard_crds::manifest::files(p)
                .with_context(|| format!("reading {}", p.display()))?,
        );
    }
    files.sort();
    files.dedup();
    for f in &files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        switchyard_crds::manifest::add_yaml(&mut inventory, &f.display().to_string(), &text)?;
    }
    let compiled = compile(&inventory);
    let mut errors = 0;
    for d in &compiled.diagnostics {
        for i in &d.issues {
            let level = match i.severity {
                Severity::Error => {
                    errors += 1;
                    "error"
                }
                Severity::Warning => "warning",
            };
            eprintln!("{level}: {}: {} [{}]", d.object, i.message, i.reason);
        }
    }
    if !quiet {
        eprintln!(
            "{} objects from {} files, {} not ready; snapshot {}",
            compiled.diagnostics.len(),
            files.len(),
            compiled.diagnostics.iter().filter(|d| !d.ready()).count(),
            &compiled.snapshot.version[..12]
        );
    }
    if print_snapshot {
        println!(
            "{}",
            serde_json::to_string_pretty(&compiled.snapshot.redacted())?
        );
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
