//! The example server's Redis-related command line: key file errors,
//! the ephemeral-key warning, the memory store's note, `/stats` shape.

use std::process::{Command, Stdio};

use tls_session_cache_e2e::{
    KeyFile, ServerProcess, Version, connect, counter, server_binary, start_redis, stats, store_url,
};

const KEY: &str = "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd";

/// Runs the server with `args`, expecting it to refuse them; returns stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(server_binary())
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run server");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    stderr
}

#[test]
fn unreadable_or_malformed_key_files_exit_2_with_a_clear_message() {
    let missing = refused(&[
        "--store",
        "redis://127.0.0.1:1",
        "--seal-key-file",
        "/nonexistent/seal.keys",
    ]);
    assert!(missing.contains("cannot read seal key file"), "{missing}");

    let bad = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(bad.path(), "not-a-key\n").expect("write");
    let path = bad.path().to_str().expect("utf-8 temp path");
    let malformed = refused(&["--store", "redis://127.0.0.1:1", "--seal-key-file", path]);
    assert!(malformed.contains("line 1"), "{malformed}");

    let unknown = refused(&["--store", "memcached://127.0.0.1:1"]);
    assert!(unknown.contains("expected memory"), "{unknown}");
}

#[test]
fn a_key_file_others_can_read_is_refused_unless_allowed_explicitly() {
    use std::os::unix::fs::PermissionsExt;
    let keys = KeyFile::new(&[KEY]);
    std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let path = keys.path().to_str().expect("utf-8 temp path");
    let shared = refused(&["--store", "redis://127.0.0.1:1", "--seal-key-file", path]);
    assert!(shared.contains("chmod 600"), "{shared}");
    let mut server = ServerProcess::start(&[
        "--store",
        "memory",
        "--seal-key-file",
        path,
        "--allow-shared-seal-key-file",
    ]);
    server.stop_cleanly();
    assert!(
        server.stderr().contains("allowed explicitly"),
        "{}",
        server.stderr()
    );
}

#[test]
fn redis_store_without_a_key_file_warns_about_the_ephemeral_key() {
    let redis = start_redis();
    let url = store_url(&redis);
    let mut server = ServerProcess::start(&["--store", &url]);
    let first = connect(server.addr(), Version::Tls12, None);
    assert!(connect(server.addr(), Version::Tls12, Some(&first.session)).resumed);
    server.stop_cleanly();
    let log = server.stderr();
    assert!(log.contains("ephemeral key"), "no warning:\n{log}");
}

#[test]
fn memory_store_accepts_and_ignores_a_key_file() {
    let keys = KeyFile::new(&[KEY]);
    let path = keys.path().to_str().expect("utf-8 temp path");
    let mut server = ServerProcess::start(&["--store", "memory", "--seal-key-file", path]);
    let s = stats(server.addr());
    assert!(
        s.get("redis").is_none(),
        "memory store reports Redis counters: {s}"
    );
    server.stop_cleanly();
    assert!(server.stderr().contains("not used with --store memory"));
}

#[test]
fn redis_stats_are_added_without_changing_the_other_members() {
    let redis = start_redis();
    let url = store_url(&redis);
    let keys = KeyFile::new(&[KEY]);
    let path = keys.path().to_str().expect("utf-8 temp path");
    let server = ServerProcess::start(&["--store", &url, "--seal-key-file", path]);
    let s = stats(server.addr());
    let members: Vec<&str> = s
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for name in [
        "resumed",
        "full",
        "lookups",
        "hits",
        "misses",
        "stored",
        "skipped",
        "oversize",
        "corrupt",
        "mismatched",
        "invalid_id",
        "removed",
        "errors",
        "panics",
        "store",
        "redis",
    ] {
        assert!(members.contains(&name), "/stats lacks {name}: {s}");
    }
    for name in [
        "timeouts",
        "circuit_open_rejections",
        "circuit_opens",
        "corrupt",
        "unknown_key",
        "dropped_writes",
        "queued_writes",
        "fallback_lookups",
        "fallback_hits",
        "fallback_refused",
    ] {
        counter(&s, &format!("redis.{name}"));
    }
    assert_eq!(s["redis"]["circuit"], "closed", "{s}");
}

#[test]
fn tiered_store_resumes_across_servers() {
    let redis = start_redis();
    let url = format!("tiered+{}", store_url(&redis));
    let keys = KeyFile::new(&[KEY]);
    let path = keys.path().to_str().expect("utf-8 temp path");
    let a = ServerProcess::start(&["--store", &url, "--seal-key-file", path]);
    let b = ServerProcess::start(&["--store", &url, "--seal-key-file", path]);
    let first = connect(a.addr(), Version::Tls12, None);
    assert!(connect(b.addr(), Version::Tls12, Some(&first.session)).resumed);
    // Second lookup on B is answered by its local tier.
    assert!(connect(b.addr(), Version::Tls12, Some(&first.session)).resumed);
    let sb = stats(b.addr());
    assert_eq!(counter(&sb, "redis.local_hits"), 1, "{sb}");

    let t13 = connect(a.addr(), Version::Tls13, None);
    assert!(connect(b.addr(), Version::Tls13, Some(&t13.session)).resumed);
    assert!(!connect(a.addr(), Version::Tls13, Some(&t13.session)).resumed);
}
