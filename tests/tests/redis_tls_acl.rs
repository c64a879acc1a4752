//! TLS and ACL users between example servers and Redis (issue 12, items 1
//! and 2): two servers on a TLS-only `redis-server` (`rediss://`,
//! `--redis-ca`, a client certificate Redis requires) resume each other's
//! sessions; a server pointed at a Redis whose certificate comes from
//! another CA starts, does full handshakes and counts the refusals; an ACL
//! user's password from `--redis-password-file` works; a wrong one exits 2
//! with a clear message; a password never reaches the log or `/stats`.

use std::process::{Command, Stdio};

use tls_session_cache_e2e::{
    KeyFile, ServerProcess, Version, connect, counter, server_binary, stats,
};
use tls_session_cache_testkit::{RedisServer, TestPki};

const KEY: &str = "7d1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f777";
const PASSWORD: &str = "e2e-S3cret-pw";

fn pki() -> TestPki {
    TestPki::generate().unwrap_or_else(|e| panic!("test certificates: {e}"))
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn two_servers_resume_each_others_sessions_over_tls_to_redis() {
    let pki = pki();
    let redis = RedisServer::start_tls(&pki.server, &pki.ca, Some(&pki.client), &[])
        .unwrap_or_else(|e| panic!("cannot start a TLS redis-server: {e}"));
    let url = format!("rediss://{}", redis.addr());
    let keys = KeyFile::new(&[KEY]);
    let args = [
        "--store",
        &url,
        "--seal-key-file",
        path(keys.path()),
        "--redis-ca",
        path(&pki.ca),
        "--redis-cert",
        path(&pki.client.cert),
        "--redis-key",
        path(&pki.client.key),
    ];
    let a = ServerProcess::start(&args);
    let b = ServerProcess::start(&args);
    for version in [Version::Tls12, Version::Tls13] {
        let first = connect(a.addr(), version, None);
        assert!(!first.resumed);
        let on_b = connect(b.addr(), version, Some(&first.session));
        assert!(
            on_b.resumed,
            "{version:?}: B did not resume over TLS:\n{}",
            b.stderr()
        );
    }
    let sb = stats(b.addr());
    assert_eq!(counter(&sb, "resumed"), 2, "{sb}");
    assert_eq!(counter(&sb, "redis.tls_errors"), 0, "{sb}");
    assert_eq!(counter(&sb, "errors"), 0, "{sb}");
    assert!(a.stderr().contains("connected"), "{}", a.stderr());
}

#[test]
fn a_redis_with_a_foreign_certificate_is_refused_counted_and_handshakes_stay_full() {
    let pki = pki();
    let rogue = RedisServer::start_tls(&pki.other_server, &pki.other_ca, None, &[])
        .unwrap_or_else(|e| panic!("cannot start a TLS redis-server: {e}"));
    let url = format!("rediss://{}", rogue.addr());
    let keys = KeyFile::new(&[KEY]);
    let server = ServerProcess::start(&[
        "--store",
        &url,
        "--seal-key-file",
        path(keys.path()),
        "--redis-ca",
        path(&pki.ca),
    ]);
    for version in [Version::Tls12, Version::Tls13] {
        let first = connect(server.addr(), version, None);
        let again = connect(server.addr(), version, Some(&first.session));
        assert!(!again.resumed, "resumed through an untrusted Redis");
    }
    let s = stats(server.addr());
    assert!(counter(&s, "redis.tls_errors") >= 1, "{s}");
    assert!(counter(&s, "errors") >= 1, "{s}");
    let log = server.stderr();
    assert!(log.contains("certificate verify failed"), "{log}");
    assert_eq!(rogue.cli(None, &["DBSIZE"]).unwrap(), "0");
}

fn acl_redis() -> RedisServer {
    let pass = format!(">{PASSWORD}");
    RedisServer::start_with_args(&[
        "--user", "alice", "on", &pass, "~*", "+@all", "--user", "default", "off",
    ])
    .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

#[test]
fn an_acl_password_from_a_file_works_and_never_reaches_the_log_or_stats() {
    let redis = acl_redis();
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("redis.pw");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let keys = KeyFile::new(&[KEY]);
    let from_file = format!("redis://alice@{}/1", redis.addr());
    let in_url = format!("redis://alice:{PASSWORD}@{}/1", redis.addr());
    let a = ServerProcess::start(&[
        "--store",
        &from_file,
        "--seal-key-file",
        path(keys.path()),
        "--redis-password-file",
        path(&pw_file),
    ]);
    let b = ServerProcess::start(&["--store", &in_url, "--seal-key-file", path(keys.path())]);
    let first = connect(a.addr(), Version::Tls12, None);
    assert!(connect(b.addr(), Version::Tls12, Some(&first.session)).resumed);
    let sb = stats(b.addr());
    assert_eq!(counter(&sb, "redis.auth_errors"), 0, "{sb}");
    for (name, text) in [
        ("A's log", a.stderr()),
        ("B's log", b.stderr()),
        ("B's /stats", sb.to_string()),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "the password is in {name}:\n{text}"
        );
    }
    assert!(b.stderr().contains("alice:***@"), "{}", b.stderr());
}

#[test]
fn a_wrong_password_exits_2_with_a_clear_message_without_the_password() {
    let redis = acl_redis();
    let wrong = "not-the-pw-42";
    let url = format!("redis://alice:{wrong}@{}", redis.addr());
    let out = Command::new(server_binary())
        .args(["--listen", "127.0.0.1:0", "--store", &url])
        .stdin(Stdio::null())
        .output()
        .expect("run server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused access"), "{stderr}");
    assert!(stderr.contains("alice:***@"), "{stderr}");
    assert!(
        !stderr.contains(wrong),
        "the password is in the message:\n{stderr}"
    );
    assert!(out.stdout.is_empty());

    // A password in the URL and in a file: refused, without either.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "file-pw-77\n").unwrap();
    let out = Command::new(server_binary())
        .args(["--listen", "127.0.0.1:0", "--store", &url])
        .args(["--redis-password-file", path(file.path())])
        .output()
        .expect("run server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains(wrong) && !stderr.contains("file-pw-77"),
        "{stderr}"
    );
}

#[test]
fn a_bad_url_error_does_not_show_the_password() {
    let out = Command::new(server_binary())
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(format!("redis://alice:{PASSWORD}@127.0.0.1:notaport"))
        .output()
        .expect("run server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}
