//! The printed table and the JSON file.

use std::fmt::Write as _;

use crate::load::LoadRow;
use crate::lookup::LookupCost;
use crate::memory::MemoryCost;
use crate::redis_bytes::RedisBytes;
use crate::setup::Proto;
use crate::summary::{Figures, Row};

/// A JSON number, or `null` when not finite.
fn num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "null".into()
    }
}

fn opt(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "null".into(), |x| num(x, decimals))
}

/// A JSON string literal (the strings here are plain ASCII; escape anyway).
fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The results table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:<9} {:>9} {:>17} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>6}",
        "protocol",
        "config",
        "hs/s",
        "(min..max)",
        "p50 µs",
        "p99 µs",
        "srv µs/hs",
        "cli µs/hs",
        "redis µs",
        "ratio",
        "cpu×",
        "vs mem",
        "errors"
    );
    for r in rows {
        let f = |x: Option<f64>, d: usize| x.map_or_else(|| "-".into(), |x| format!("{x:.d$}"));
        let _ = writeln!(
            s,
            "{:<8} {:<9} {:>9.0} {:>17} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>9} {:>7} {:>7} {:>7} {:>6}",
            r.proto.name(),
            r.config.name(),
            r.figures.rate,
            format!("({:.0}..{:.0})", r.figures.rate_min, r.figures.rate_max),
            r.figures.p50_us,
            r.figures.p99_us,
            r.figures.server_cpu_us,
            r.figures.client_cpu_us,
            f(r.figures.redis_cpu_us, 1),
            f(r.ratio, 3),
            f(r.cpu_ratio, 3),
            f(r.ratio_to_memory, 3),
            r.figures.errors
        );
    }
    s
}

/// The load group's table.
pub fn load_table(rows: &[LoadRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:<24} {:>8} {:>15} {:>8} {:>8} {:>9} {:>9} {:>8} {:>9} {:>7} {:>6}",
        "protocol",
        "config",
        "hs/s",
        "(min..max)",
        "p50 µs",
        "p99 µs",
        "srv µs/hs",
        "cli µs/hs",
        "redis µs",
        "vs block",
        "cpu×",
        "errors"
    );
    for r in rows {
        let f = |x: Option<f64>, d: usize| x.map_or_else(|| "-".into(), |x| format!("{x:.d$}"));
        let _ = writeln!(
            s,
            "{:<8} {:<24} {:>8.0} {:>15} {:>8.0} {:>8.0} {:>9.1} {:>9.1} {:>8} {:>9} {:>7} {:>6}",
            r.proto.name(),
            r.label,
            r.figures.rate,
            format!("({:.0}..{:.0})", r.figures.rate_min, r.figures.rate_max),
            r.figures.p50_us,
            r.figures.p99_us,
            r.figures.server_cpu_us,
            r.figures.client_cpu_us,
            f(r.figures.redis_cpu_us, 1),
            f(r.ratio_to_blocking, 3),
            f(r.cpu_ratio_to_blocking, 3),
            r.figures.errors
        );
    }
    s
}

/// The lookup-cost table.
pub fn lookup_table(costs: &[LookupCost]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:>5} {:>8} {:>12} {:>10} {:>10} {:>8} {:>8} {:>12}",
        "protocol",
        "DER",
        "get ns",
        "take+put ns",
        "d2i ns",
        "i2d ns",
        "dup ns",
        "put ns",
        "added ns"
    );
    for c in costs {
        let _ = writeln!(
            s,
            "{:<8} {:>5} {:>8.0} {:>12.0} {:>10.0} {:>10.0} {:>8.0} {:>8.0} {:>12.0}",
            c.proto.name(),
            c.der_len,
            c.get_ns,
            c.take_put_ns,
            c.decode_ns,
            c.encode_ns,
            c.dup_ns,
            c.put_ns,
            c.lookup_ns()
        );
    }
    s
}

/// The bytes-per-session table.
pub fn memory_table(costs: &[MemoryCost]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:>9} {:>5} {:>10} {:>10} {:>8} {:>9} {:>8}",
        "protocol", "sessions", "DER", "requested", "malloc", "charged", "overhead", "insert s"
    );
    for c in costs {
        let _ = writeln!(
            s,
            "{:<8} {:>9} {:>5} {:>10.1} {:>10.1} {:>8.1} {:>9.1} {:>8.2}",
            c.proto.name(),
            c.sessions,
            c.der_len,
            c.requested,
            c.footprint,
            c.charged,
            c.overhead(),
            c.insert_secs
        );
    }
    s
}

/// The Redis bytes-per-session table: previous and compact format side by side.
pub fn redis_bytes_table(costs: &[RedisBytes]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:<9} {:>9} {:>5} {:>5} {:>6} {:>12} {:>13} {:>8}",
        "protocol",
        "format",
        "sessions",
        "DER",
        "key",
        "value",
        "used_memory",
        "MEMORY USAGE",
        "insert s"
    );
    for c in costs {
        let _ = writeln!(
            s,
            "{:<8} {:<9} {:>9} {:>5} {:>5} {:>6} {:>12.1} {:>13} {:>8.2}",
            c.proto.name(),
            c.format,
            c.sessions,
            c.der_len,
            c.key_len,
            c.value_len,
            c.per_session,
            c.memory_usage,
            c.insert_secs
        );
    }
    s
}

/// An entry of `"results"` up to its own members: the opening brace and the
/// members every entry has, from `"config"` to `"cache_errors"`. `ratios`
/// are those to `internal` (rate, server CPU) and to `memory` (rate).
fn result_members(
    s: &mut String,
    config: &str,
    proto: Proto,
    f: &Figures,
    ratios: [Option<f64>; 3],
) {
    let _ = write!(
        s,
        concat!(
            "\n  {{\"config\":{},\"protocol\":{},\"handshakes_per_sec\":{},",
            "\"p50_us\":{},\"p99_us\":{},\"server_cpu_us\":{},",
            "\"ratio_to_internal\":{},\"server_cpu_ratio_to_internal\":{},\"ratio_to_memory\":{},",
            "\"handshakes_per_sec_min\":{},\"handshakes_per_sec_max\":{},",
            "\"client_cpu_us\":{},\"redis_cpu_us\":{},\"handshakes\":{},\"errors\":{},",
            "\"cache_misses\":{},\"cache_errors\":{}"
        ),
        string(config),
        string(proto.name()),
        num(f.rate, 1),
        num(f.p50_us, 1),
        num(f.p99_us, 1),
        num(f.server_cpu_us, 2),
        opt(ratios[0], 4),
        opt(ratios[1], 4),
        opt(ratios[2], 4),
        num(f.rate_min, 1),
        num(f.rate_max, 1),
        num(f.client_cpu_us, 2),
        opt(f.redis_cpu_us, 2),
        f.handshakes,
        f.errors,
        f.cache_misses,
        f.cache_errors,
    );
}

/// Everything measured, as JSON: `{"results":[…], …}`.
pub fn json(
    rows: &[Row],
    load: &[LoadRow],
    lookups: &[LookupCost],
    memory: &[MemoryCost],
    in_redis: &[RedisBytes],
    environment: &[(&str, String)],
) -> String {
    let mut s = String::from("{\"results\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let ratios = [r.ratio, r.cpu_ratio, r.ratio_to_memory];
        result_members(&mut s, r.config.name(), r.proto, &r.figures, ratios);
        s.push('}');
    }
    // The load group's rows: the same members first (null where an anchor
    // of the sequential group does not apply), then their own.
    for (i, r) in load.iter().enumerate() {
        if i > 0 || !rows.is_empty() {
            s.push(',');
        }
        result_members(&mut s, &r.label, r.proto, &r.figures, [None; 3]);
        let _ = write!(
            s,
            concat!(
                ",\"ratio_to_blocking\":{},\"server_cpu_ratio_to_blocking\":{},",
                "\"concurrency\":{},\"server_threads\":{},\"redis_delay_ms\":{},\"refills\":{}}}"
            ),
            opt(r.ratio_to_blocking, 4),
            opt(r.cpu_ratio_to_blocking, 4),
            r.settings.concurrency,
            r.settings.server_threads,
            if r.config.is_slow() {
                num(r.settings.redis_delay.as_secs_f64() * 1e3, 3)
            } else {
                "0".into()
            },
            r.refills,
        );
    }
    s.push_str("\n],\n\"lookup_cost_ns\":[");
    for (i, c) in lookups.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            concat!(
                "\n  {{\"protocol\":{},\"der_bytes\":{},\"get\":{},\"take_put\":{},",
                "\"d2i\":{},\"i2d\":{},\"dup\":{},\"put\":{},\"added_per_resumption\":{}}}"
            ),
            string(c.proto.name()),
            c.der_len,
            num(c.get_ns, 0),
            num(c.take_put_ns, 0),
            num(c.decode_ns, 0),
            num(c.encode_ns, 0),
            num(c.dup_ns, 0),
            num(c.put_ns, 0),
            num(c.lookup_ns(), 0),
        );
    }
    s.push_str("\n],\n\"memory_per_session\":[");
    for (i, c) in memory.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            concat!(
                "\n  {{\"protocol\":{},\"sessions\":{},\"der_bytes\":{},\"requested_bytes\":{},",
                "\"malloc_bytes\":{},\"charged_bytes\":{},\"overhead_bytes\":{}}}"
            ),
            string(c.proto.name()),
            c.sessions,
            c.der_len,
            num(c.requested, 1),
            num(c.footprint, 1),
            num(c.charged, 1),
            num(c.overhead(), 1),
        );
    }
    s.push_str("\n],\n\"redis_bytes_per_session\":[");
    for (i, c) in in_redis.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            concat!(
                "\n  {{\"protocol\":{},\"format\":{},\"sessions\":{},\"der_bytes\":{},",
                "\"key_bytes\":{},\"value_bytes\":{},\"used_memory_per_session\":{},",
                "\"memory_usage\":{}}}"
            ),
            string(c.proto.name()),
            string(c.format),
            c.sessions,
            c.der_len,
            c.key_len,
            c.value_len,
            num(c.per_session, 1),
            c.memory_usage,
        );
    }
    s.push_str("\n],\n\"environment\":{");
    for (i, (k, v)) in environment.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{}:{}", string(k), string(v));
    }
    s.push_str("}}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadConfig, LoadSettings};
    use crate::setup::Config;

    #[test]
    fn json_has_the_required_shape() {
        let row = Row {
            config: Config::Memory,
            proto: Proto::Tls13,
            figures: Figures {
                rate: 1234.5,
                rate_min: 1000.0,
                rate_max: 1300.0,
                p50_us: 80.0,
                p99_us: 150.0,
                server_cpu_us: 40.5,
                client_cpu_us: 30.0,
                redis_cpu_us: None,
                handshakes: 10,
                errors: 0,
                cache_misses: 0,
                cache_errors: 0,
            },
            ratio: Some(0.98),
            cpu_ratio: None,
            ratio_to_memory: Some(1.0),
        };
        let j = json(&[row], &[], &[], &[], &[], &[("load", "0.5 \"x\"".into())]);
        assert!(j.starts_with("{\"results\":[\n  {\"config\":\"memory\",\"protocol\":\"TLSv1.3\",\"handshakes_per_sec\":1234.5,\"p50_us\":80.0,"), "{j}");
        assert!(j.contains("\"server_cpu_us\":40.50,"), "{j}");
        assert!(j.contains("\"server_cpu_ratio_to_internal\":null"), "{j}");
        assert!(j.contains("\"load\":\"0.5 \\\"x\\\"\""), "{j}");
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert_eq!(j.matches('[').count(), j.matches(']').count());
    }

    #[test]
    fn load_rows_share_the_members_and_add_their_own() {
        let settings = LoadSettings {
            concurrency: 16,
            server_threads: 2,
            redis_delay: std::time::Duration::from_millis(1),
            pool_per_client: 2,
        };
        let row = LoadRow {
            config: LoadConfig::AsyncRedisSlow,
            label: LoadConfig::AsyncRedisSlow.label(16),
            proto: Proto::Tls12,
            figures: Figures {
                rate: 2000.0,
                rate_min: 1900.0,
                rate_max: 2100.0,
                p50_us: 7000.0,
                p99_us: 12000.0,
                server_cpu_us: 150.0,
                client_cpu_us: 140.0,
                redis_cpu_us: Some(20.0),
                handshakes: 100,
                errors: 0,
                cache_misses: 0,
                cache_errors: 0,
            },
            ratio_to_blocking: Some(1.8),
            cpu_ratio_to_blocking: Some(1.1),
            refills: 0,
            settings,
        };
        let j = json(&[], std::slice::from_ref(&row), &[], &[], &[], &[]);
        assert!(j.starts_with("{\"results\":[\n  {\"config\":\"async-redis-c16-slow\",\"protocol\":\"TLSv1.2\",\"handshakes_per_sec\":2000.0,\"p50_us\":7000.0,\"p99_us\":12000.0,\"server_cpu_us\":150.00,"), "{j}");
        assert!(j.contains("\"ratio_to_blocking\":1.8000,"), "{j}");
        assert!(j.contains("\"redis_delay_ms\":1.000,"), "{j}");
        let two = json(&[], &[row.clone(), row], &[], &[], &[], &[]);
        assert_eq!(two.matches("},\n  {").count(), 1, "{two}");
        assert_eq!(two.matches('{').count(), two.matches('}').count());
    }
}
