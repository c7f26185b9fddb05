//! A smoke run of the benchmark harness with tiny durations, on the binaries of this build
//! (`cargo test --workspace` builds the mock upstream, data plane and operator next to it).
//! The benchmark itself is `bash bench/run.sh`.

use std::path::Path;
use std::process::Command;

#[test]
fn harness_runs_every_phase() {
    let bench = Path::new(env!("CARGO_BIN_EXE_switchyard-bench"));
    let Some(bin_dir) = bench.parent() else {
        panic!("no folder for {bench:?}");
    };
    let needed = [
        "switchyard-mock-upstream",
        "switchyard-dataplane",
        "switchyard-operator",
    ];
    if let Some(missing) = needed.iter().find(|b| !bin_dir.join(b).exists()) {
        eprintln!("skipped: {missing} is not built in {bin_dir:?} (run cargo test --workspace)");
        return;
    }
    let work = std::env::temp_dir().join(format!("switchyard-bench-smoke-{}", std::process::id()));
    let out = Command::new(bench)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--bin-dir", &bin_dir.display().to_string()])
        .args(["--work-dir", &work.display().to_string()])
        .args(["--gateway-cpu", "", "--client-cpu", ""])
        .args(["--seconds", "0.2", "--rates", "100", "--connections", "2"])
        .args([
            "--streams",
            "4",
            "--stream-seconds",
            "0.3",
            "--many-streams",
            "6",
            "--many-stream-chunks",
            "2",
            "--soak-seconds",
            "0.6",
            "--soak-window",
            "0.2",
            "--cr-counts",
            "100",
        ])
        .args(["--edits", "2", "--edit-crs", "100", "--operator-crs", "100"])
        .args(["--peers", "", "--out-dir", ""])
        .output()
        .unwrap_or_else(|e| panic!("running {bench:?}: {e}"));
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for row in [
        "floor: a bare HTTP relay",
        "added latency, 1 at a time, routing + auth + metrics",
        "Switchyard's own cost",
        "OpenAI→Anthropic, 8 KB body",
        "added latency at 100 req/s open loop",
        "throughput, closed loop",
        "floor: time to first token through a bare relay",
        "added time to first token",
        "6 concurrent streams (callers on HTTP/2)",
        "data-plane resident memory, idle",
        "soak, 1 s at",
        "compile 100 CRs",
        "manifest edit → route served",
        "operator resident memory",
    ] {
        assert!(
            stdout.contains(row),
            "row {row:?} missing:\n{stdout}\n{stderr}"
        );
    }
}
