//! Store URLs: which Redis (one server, a Cluster, or a master found through
//! Sentinel), over TLS or not, with which credentials — and how to print
//! one without its password ([`redact_url`]).
//!
//! | URL | what |
//! |---|---|
//! | `redis://[USER:PASSWORD@]HOST:PORT[/DB]`, `unix:///path` | one server |
//! | `rediss://…` | the same over TLS |
//! | `redis+cluster://[USER:PASSWORD@]H1:P1,H2:P2,…` | a Redis Cluster (seed nodes) |
//! | `rediss+cluster://…` | the same over TLS |
//! | `redis+sentinel://[USER:PASSWORD@]S1:P1,S2:P2,…/MASTER-NAME[/DB]` | the master Sentinel names |
//! | `rediss+sentinel://…` | the same, TLS to the sentinels and the master |
//!
//! Credentials and the database are those of the data nodes (the server,
//! the cluster's masters, Sentinel's master); sentinels are asked without
//! credentials. The host, port, credentials and database of each node are
//! parsed by redis-rs (`redis://` syntax, percent-encoding included).
//!
//! redis-rs's `#insecure` fragment (TLS without certificate checks) is
//! refused: the only way to turn verification off is
//! [`TlsOptions::danger_accept_invalid_certificates`](crate::TlsOptions::danger_accept_invalid_certificates),
//! which logs a warning.

use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, RedisError};

/// What a store URL names.
#[derive(Debug)]
pub(crate) enum Topology {
    /// One server.
    Standalone(ConnectionInfo),
    /// Redis Cluster seed nodes (`Tcp` addresses; credentials on each).
    Cluster(Vec<ConnectionInfo>),
    /// Sentinels (`Tcp` addresses, no credentials), the master's name, and
    /// the settings (credentials, database) for the master.
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master: String,
        data: ConnectionInfo,
    },
}

/// A parsed store URL.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) topology: Topology,
    /// `rediss…`: TLS to every node.
    pub(crate) tls: bool,
}

/// Why a store URL was refused, before redis-rs parsed a node.
fn invalid(what: &'static str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, what))
}

/// Parses a store URL.
pub(crate) fn parse(url: &str) -> Result<Parsed, RedisError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("not a URL (no `scheme://`)"))?;
    let (tls, kind) = match scheme {
        "redis" => (false, ""),
        "rediss" => (true, ""),
        "redis+cluster" => (false, "cluster"),
        "rediss+cluster" => (true, "cluster"),
        "redis+sentinel" => (false, "sentinel"),
        "rediss+sentinel" => (true, "sentinel"),
        "unix" | "redis+unix" => {
            let client = redis::Client::open(url)?;
            return Ok(Parsed {
                topology: Topology::Standalone(client.get_connection_info().clone()),
                tls: false,
            });
        }
        _ => {
            return Err(invalid(
                "unknown scheme: expected redis://, rediss://, redis+cluster://, \
                 rediss+cluster://, redis+sentinel://, rediss+sentinel:// or unix://",
            ));
        }
    };
    if rest.contains('#') {
        return Err(invalid(
            "URL fragments (such as #insecure) are not accepted: certificate checks can only \
             be turned off with TlsOptions::danger_accept_invalid_certificates",
        ));
    }
    let topology = match kind {
        "" => Topology::Standalone(node(rest, "")?),
        "cluster" => {
            let (userinfo, hosts) = split_userinfo(rest);
            let hosts = hosts.trim_end_matches('/');
            if hosts.contains('/') {
                return Err(invalid("a cluster URL takes no database or path"));
            }
            let nodes = hosts
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| node(n, userinfo))
                .collect::<Result<Vec<_>, _>>()?;
            Topology::Cluster(nodes)
        }
        _ => {
            let (userinfo, after) = split_userinfo(rest);
            let (hosts, path) = after
                .split_once('/')
                .ok_or_else(|| invalid("a sentinel URL needs /MASTER-NAME after the hosts"))?;
            let (master, db) = match path.split_once('/') {
                Some((m, db)) => (m, db.trim_end_matches('/')),
                None => (path, ""),
            };
            if master.is_empty() {
                return Err(invalid("a sentinel URL needs /MASTER-NAME after the hosts"));
            }
            let sentinels = hosts
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| node(n, ""))
                .collect::<Result<Vec<_>, _>>()?;
            if sentinels.is_empty() {
                return Err(invalid("a sentinel URL needs at least one sentinel"));
            }
            // The master's settings: credentials and database, at a
            // placeholder address replaced by the one Sentinel reports.
            let data = node(&format!("0.0.0.1:1/{db}"), userinfo)?;
            Topology::Sentinel {
                sentinels,
                master: master.to_string(),
                data,
            }
        }
    };
    Ok(Parsed { topology, tls })
}

/// Cluster seed nodes given one URL each (`redis://HOST:PORT`, or all
/// `rediss://HOST:PORT`).
pub(crate) fn cluster_nodes(urls: &[String]) -> Result<Parsed, RedisError> {
    let mut tls = None;
    let mut nodes = Vec::with_capacity(urls.len());
    for url in urls {
        let parsed = parse(url)?;
        if *tls.get_or_insert(parsed.tls) != parsed.tls {
            return Err(invalid(
                "cluster nodes must be all redis:// or all rediss://",
            ));
        }
        match parsed.topology {
            Topology::Standalone(info) if matches!(info.addr(), ConnectionAddr::Tcp(..)) => {
                nodes.push(info);
            }
            _ => {
                return Err(invalid(
                    "cluster nodes must be plain TCP (redis://HOST:PORT)",
                ));
            }
        }
    }
    // Every node with the first one's credentials, as before.
    if let Some(first) = nodes.first().map(|n| n.redis_settings().clone()) {
        nodes = nodes
            .into_iter()
            .map(|n| n.set_redis_settings(first.clone()))
            .collect();
    }
    Ok(Parsed {
        topology: Topology::Cluster(nodes),
        tls: tls.unwrap_or(false),
    })
}

/// `(userinfo, rest)` of `USERINFO@REST`; userinfo is empty without `@`.
/// The last `@` counts (an unencoded password may hold one).
fn split_userinfo(rest: &str) -> (&str, &str) {
    match rest.rfind('@') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => ("", rest),
    }
}

/// One node, `HOST:PORT[/DB]`, with `userinfo` (`USER:PASSWORD`, may be
/// empty), parsed by redis-rs as a plain `redis://` URL.
fn node(hostport: &str, userinfo: &str) -> Result<ConnectionInfo, RedisError> {
    let url = if userinfo.is_empty() {
        format!("redis://{hostport}")
    } else {
        format!("redis://{userinfo}@{hostport}")
    };
    let info = redis::Client::open(url.as_str())?
        .get_connection_info()
        .clone();
    match info.addr() {
        ConnectionAddr::Tcp(..) => Ok(info),
        _ => Err(invalid("expected HOST:PORT")),
    }
}

/// `url` with its password replaced by `***`, for logs and error messages.
///
/// The password is whatever follows the first `:` of the user-info part
/// (everything between `://` and the last `@`); a user name alone is kept.
/// ```
/// use tls_session_cache_redis::redact_url;
/// assert_eq!(redact_url("redis://alice:s3cret@127.0.0.1:6379/0"), "redis://alice:***@127.0.0.1:6379/0");
/// assert_eq!(redact_url("redis+sentinel://:pw@h1:26379,h2:26379/main"), "redis+sentinel://:***@h1:26379,h2:26379/main");
/// assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let Some(at) = url[start..].rfind('@').map(|i| i + start) else {
        return url.to_string();
    };
    let userinfo = &url[start..at];
    match userinfo.find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..start], &userinfo[..colon], &url[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_form_of_password() {
        for (url, want) in [
            (
                "redis://alice:s3cret@127.0.0.1:6533",
                "redis://alice:***@127.0.0.1:6533",
            ),
            ("rediss://:s3cret@h:1/2", "rediss://:***@h:1/2"),
            ("redis://u:pa/ss@word@h:1", "redis://u:***@h:1"),
            ("redis://u@h:1", "redis://u@h:1"),
            ("u:s3cret@h", "u:***@h"),
            (
                "redis+cluster://a:s3cret@h1:1,h2:2",
                "redis+cluster://a:***@h1:1,h2:2",
            ),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
            assert!(!redact_url(url).contains("s3cret"));
        }
    }

    #[test]
    fn parses_every_form() {
        let p = parse("rediss://alice:pw@127.0.0.1:7000/3").unwrap();
        assert!(p.tls);
        let Topology::Standalone(info) = p.topology else {
            panic!()
        };
        assert_eq!(info.redis_settings().username(), Some("alice"));
        assert_eq!(info.redis_settings().password(), Some("pw"));
        assert_eq!(info.redis_settings().db(), 3);

        let p = parse("rediss+cluster://u:pw@h1:1,h2:2/").unwrap();
        let Topology::Cluster(nodes) = p.topology else {
            panic!()
        };
        assert_eq!(nodes.len(), 2);
        assert!(
            nodes
                .iter()
                .all(|n| n.redis_settings().password() == Some("pw"))
        );

        let p = parse("redis+sentinel://:pw@s1:26379,s2:26380/main/2").unwrap();
        assert!(!p.tls);
        let Topology::Sentinel {
            sentinels,
            master,
            data,
        } = p.topology
        else {
            panic!()
        };
        assert_eq!(sentinels.len(), 2);
        assert_eq!(master, "main");
        assert_eq!(data.redis_settings().password(), Some("pw"));
        assert_eq!(data.redis_settings().db(), 2);
        assert!(
            sentinels
                .iter()
                .all(|s| s.redis_settings().password().is_none())
        );
    }

    #[test]
    fn refuses_bad_urls() {
        for url in [
            "rediss://h:1/#insecure",
            "redis+sentinel://s1:1",
            "redis+sentinel://s1:1/",
            "http://h:1",
            "h:1",
            "redis+cluster://h:1/0",
        ] {
            assert!(parse(url).is_err(), "{url}");
        }
    }
}
