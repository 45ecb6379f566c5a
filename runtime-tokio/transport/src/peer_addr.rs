//! A peer's cluster address as the operator wrote it (`host:port`), resolved on every dial.
//!
//! Why not a `SocketAddr` fixed at start-up: in containers (docker compose service names,
//! Kubernetes StatefulSet DNS names) a peer's name may not resolve yet when this node starts
//! (the peer's container is not up, its DNS record not published), and it may resolve to
//! another address after the peer is rescheduled. Resolving once at start turned the first case
//! into a start-up failure and the second into a node dialing a dead address forever. Keeping
//! the name and resolving it in the dialer (`tokio::net::lookup_host`, which runs `getaddrinfo`
//! on the blocking pool, so one slow lookup never stalls another peer's writer) makes both
//! routine: the writer backs off and tries again, exactly as it does for a refused connection.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use thiserror::Error;

/// Why a `host:port` string is not a peer address.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PeerAddrError {
    /// No `:port` at the end.
    #[error("`{0}` is not host:port")]
    MissingPort(String),
    /// The port is not a number in 1..=65535.
    #[error("`{0}`: port is not a number in 1..=65535")]
    BadPort(String),
    /// The host part is empty or holds characters no host name or IP literal has.
    #[error("`{0}`: bad host name")]
    BadHost(String),
}

/// `host:port` where host is a DNS name, an IPv4 literal or a bracketed IPv6 literal.
/// Syntax is checked when parsed; whether the name resolves is only known when dialing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// Host name or IP literal, without IPv6 brackets.
    host: String,
    /// TCP port (nonzero: nobody listens on port 0).
    port: u16,
}

impl PeerAddr {
    /// Parses `host:port` (`[v6]:port` for IPv6 literals).
    pub fn parse(text: &str) -> Result<PeerAddr, PeerAddrError> {
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(PeerAddrError::BadPort(text.to_string()));
            }
            return Ok(PeerAddr::from(addr));
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| PeerAddrError::MissingPort(text.to_string()))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| PeerAddrError::BadPort(text.to_string()))?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        if !host_ok {
            return Err(PeerAddrError::BadHost(text.to_string()));
        }
        Ok(PeerAddr {
            host: host.to_string(),
            port,
        })
    }

    /// The host part (a name or an IP literal without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resolves the name now. Every address the resolver returns, in its order (the dialer
    /// tries them in turn: `localhost` may list `::1` before `127.0.0.1`). An empty answer is
    /// an error, so callers never see `Ok(vec![])`.
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{self} resolved to no address"),
            ));
        }
        Ok(addrs)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl FromStr for PeerAddr {
    type Err = PeerAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PeerAddr::parse(s)
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_literals_parse_and_print_back() {
        for text in [
            "vecraft-0.vecraft.default.svc.cluster.local:7333",
            "node2:7333",
            "10.0.0.7:1",
        ] {
            assert_eq!(PeerAddr::parse(text).unwrap().to_string(), text);
        }
        let v6 = PeerAddr::parse("[::1]:7333").unwrap();
        assert_eq!((v6.host(), v6.port()), ("::1", 7333));
        assert_eq!(v6.to_string(), "[::1]:7333");
        let from: PeerAddr = "127.0.0.1:9".parse::<SocketAddr>().unwrap().into();
        assert_eq!(from, PeerAddr::parse("127.0.0.1:9").unwrap());
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        assert!(matches!(
            PeerAddr::parse("node2"),
            Err(PeerAddrError::MissingPort(_))
        ));
        for bad in ["node2:", "node2:0", "node2:65536", "node2:x", "127.0.0.1:0"] {
            assert!(
                matches!(PeerAddr::parse(bad), Err(PeerAddrError::BadPort(_))),
                "{bad}"
            );
        }
        for bad in [":7333", "no de:7333", "a/b:7333", "[::1:7333"] {
            assert!(PeerAddr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PeerAddr::parse("65535.x:65535").unwrap().port(), 65535);
    }

    #[tokio::test]
    async fn localhost_resolves_and_an_invalid_name_is_an_error() {
        let addrs = PeerAddr::parse("localhost:7333")
            .unwrap()
            .resolve()
            .await
            .unwrap();
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 7333),
            "{addrs:?}"
        );
        // `.invalid` never resolves (RFC 6761).
        assert!(
            PeerAddr::parse("no-such-peer.invalid:7333")
                .unwrap()
                .resolve()
                .await
                .is_err()
        );
    }
}
