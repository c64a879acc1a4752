//! The test kit's own tests: real processes, started and stopped.

use tls_session_cache_testkit::{Error, RedisCluster, RedisServer};

fn ping(url: &str) -> redis::RedisResult<String> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection_with_timeout(std::time::Duration::from_secs(1))?;
    redis::cmd("PING").query(&mut con)
}

#[test]
fn server_starts_stops_and_restarts_on_the_same_port() {
    let mut server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(ping(&server.url()).unwrap(), "PONG");
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query(&mut server.connection().unwrap())
        .unwrap();
    assert_eq!(
        save,
        vec!["save".to_string(), String::new()],
        "persistence off"
    );

    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(ping(&server.url()).is_err(), "still answering after stop");

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(ping(&server.url()).unwrap(), "PONG");
}

#[test]
fn paused_server_does_not_answer_until_resumed() {
    let server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut con = server.connection().unwrap();
    con.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    server.pause().unwrap();
    let r: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
    assert!(r.unwrap_err().is_timeout());
    server.resume().unwrap();
    assert_eq!(ping(&server.url()).unwrap(), "PONG");
}

#[test]
fn drop_kills_the_process() {
    let server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let url = server.url();
    drop(server);
    assert!(ping(&url).is_err());
}

#[test]
fn cluster_of_three_is_ok_and_loses_one_master() {
    let mut cluster = RedisCluster::start(3).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.nodes().len(), 3);
    assert!(cluster.url().starts_with("redis+cluster://127.0.0.1:"));
    assert_eq!(cluster.url().matches(',').count(), 2);
    let mut con = cluster.node(1).unwrap().connection().unwrap();
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con).unwrap();
    assert!(info.contains("cluster_state:ok"));
    assert!(info.contains("cluster_known_nodes:3"));
    cluster.kill(0).unwrap();
    assert!(ping(&cluster.node_urls()[0]).is_err());
    assert_eq!(ping(&cluster.node_urls()[1]).unwrap(), "PONG");
    assert!(matches!(cluster.kill(7), Err(Error::NoSuchNode(7))));
    assert!(matches!(
        RedisCluster::start(2),
        Err(Error::TooFewMasters(2))
    ));
}

#[test]
fn a_missing_program_says_how_to_install_it() {
    let e = Error::NotInstalled {
        program: "redis-server",
    };
    assert!(
        e.to_string().contains("apt-get install redis-server"),
        "{e}"
    );
}
