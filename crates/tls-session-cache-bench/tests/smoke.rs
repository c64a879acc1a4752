//! Runs the real benchmark binary briefly: every configuration must do
//! only the kind of handshake it claims (exit status 0 means no resumed
//! configuration fell back to a full handshake and every count agreed), and
//! the JSON and SVG files must have the documented shape. No timing is
//! asserted.

use std::process::Command;

#[test]
fn short_run_is_clean_and_writes_json_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = (dir.path().join("b.json"), dir.path().join("b.svg"));
    let out = Command::new(env!("CARGO_BIN_EXE_handshake-bench"))
        .args([
            "--seconds",
            "0.1",
            "--rounds",
            "2",
            "--pool",
            "4",
            "--no-extras",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench failed (redis-server missing? `apt-get install redis-server`)\n{stdout}\n{stderr}"
    );
    let j = std::fs::read_to_string(&json).unwrap();
    assert!(j.starts_with("{\"results\":["), "{j}");
    for config in ["full", "internal", "memory", "tiered", "redis"] {
        for proto in ["TLSv1.2", "TLSv1.3"] {
            let entry = format!(
                "{{\"config\":\"{config}\",\"protocol\":\"{proto}\",\"handshakes_per_sec\":"
            );
            assert!(j.contains(&entry), "missing {config} {proto} in {j}");
        }
    }
    for field in [
        "\"p50_us\":",
        "\"p99_us\":",
        "\"server_cpu_us\":",
        "\"errors\":0",
    ] {
        assert_eq!(j.matches(field).count(), 10, "{field} in {j}");
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg ") && chart.trim_end().ends_with("</svg>"));
    assert_eq!(
        chart.matches("<rect x=").count(),
        10 + 2,
        "10 bars + 2 legend keys"
    );
}

/// The concurrent-load group alone (`--config load`), briefly, with few
/// clients: every blocking and async configuration, on the real and on the
/// delayed Redis, for both protocols, must resume every handshake (exit
/// status 0: no full handshake, no failure, every count agreed) and appear
/// in the JSON with the common members. No timing is asserted.
#[test]
fn load_group_short_run_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("load.json");
    let out = Command::new(env!("CARGO_BIN_EXE_handshake-bench"))
        .args([
            "--config",
            "load",
            "--seconds",
            "0.1",
            "--rounds",
            "2",
            "--concurrency",
            "4",
            "--server-threads",
            "2",
            "--redis-delay-ms",
            "1",
            "--no-extras",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "load bench failed (redis-server missing? `apt-get install redis-server`)\n{stdout}\n{stderr}"
    );
    let j = std::fs::read_to_string(&json).unwrap();
    assert!(j.starts_with("{\"results\":["), "{j}");
    for config in [
        "blocking-redis-c4",
        "async-redis-c4",
        "blocking-redis-c4-slow",
        "async-redis-c4-slow",
    ] {
        for proto in ["TLSv1.2", "TLSv1.3"] {
            let entry = format!(
                "{{\"config\":\"{config}\",\"protocol\":\"{proto}\",\"handshakes_per_sec\":"
            );
            assert!(j.contains(&entry), "missing {config} {proto} in {j}");
        }
    }
    for field in [
        "\"p50_us\":",
        "\"p99_us\":",
        "\"server_cpu_us\":",
        "\"errors\":0,",
        "\"cache_misses\":0,",
        "\"concurrency\":4,",
        "\"ratio_to_blocking\":",
    ] {
        assert_eq!(j.matches(field).count(), 8, "{field} in {j}");
    }
    // Handshakes were really made: no row has zero resumed handshakes.
    assert!(!j.contains("\"handshakes\":0,"), "{j}");
    // The sequential group was not run.
    assert!(!j.contains("\"config\":\"internal\""), "{j}");
}

/// The Redis bytes-per-session measurement alone (`--redis-bytes`), with
/// few sessions: both protocols in both key formats appear in the JSON,
/// and the compact format's names and values are the shorter ones (sizes,
/// which are exact; no memory figure or timing is asserted).
#[test]
fn redis_bytes_short_run_compares_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bytes.json");
    let out = Command::new(env!("CARGO_BIN_EXE_handshake-bench"))
        .args(["--redis-bytes", "--redis-sessions", "500"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let j = std::fs::read_to_string(&json).unwrap();
    let field = |entry: &str, name: &str| -> u64 {
        let at = entry.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
        entry[at..]
            .split([',', '}'])
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap() as u64
    };
    for proto in ["TLSv1.2", "TLSv1.3"] {
        let entry = |format: &str| -> String {
            let start = format!("{{\"protocol\":\"{proto}\",\"format\":\"{format}\",");
            let at = j
                .find(&start)
                .unwrap_or_else(|| panic!("{proto} {format} in {j}"));
            j[at..].split('}').next().unwrap().to_string()
        };
        let (old, new) = (entry("previous"), entry("compact"));
        assert_eq!(field(&old, "sessions"), 500);
        assert!(
            field(&new, "key_bytes") < field(&old, "key_bytes"),
            "{old}\n{new}"
        );
        assert!(
            field(&new, "value_bytes") < field(&old, "value_bytes"),
            "{old}\n{new}"
        );
        assert!(field(&new, "used_memory_per_session") > 0, "{new}");
    }
    assert!(
        !j.contains("\"config\":"),
        "no handshakes in --redis-bytes: {j}"
    );
}
