//! Target URL parsing with the loopback-only rule.

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL as given (used for the handshake request).
    pub(crate) url: String,
    /// Resolved loopback address to connect to.
    pub(crate) addr: SocketAddr,
    /// `wss://`: connect with TLS (trusting `--ca`).
    pub(crate) tls: bool,
}

/// Parse `ws[s]://host[:port][/path]` and refuse anything that is not loopback.
pub(crate) fn parse(url: &str) -> Result<Target, String> {
    let (rest, tls) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => return Err(format!("{url:?}: only ws:// and wss:// URLs are supported")),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?}: bad host"));
    }
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    } else {
        authority.to_owned()
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url:?}: cannot resolve: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{url:?}: host resolves to nothing"));
    }
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "{url:?}: refusing non-loopback target {} (this tool only loads 127.0.0.0/8 or ::1)",
            bad.ip()
        ));
    }
    // Prefer IPv4 (the source-address spreading is 127.0.0.x).
    let addr = addrs
        .iter()
        .copied()
        .find(SocketAddr::is_ipv4)
        .unwrap_or(addrs[0]);
    Ok(Target {
        url: url.to_owned(),
        addr,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback() {
        let t = parse("ws://127.0.0.1:9002/").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9002".parse().unwrap());
        assert!(parse("ws://127.3.4.5:1/x?y").is_ok());
        assert!(parse("ws://[::1]:9002/").is_ok());
        assert_eq!(parse("ws://127.0.0.1/").unwrap().addr.port(), 80);
        let t = parse("wss://localhost:9443/").unwrap();
        assert!(t.tls && t.addr.ip().is_loopback() && t.addr.port() == 9443);
        assert_eq!(parse("wss://127.0.0.1/").unwrap().addr.port(), 443);
    }

    #[test]
    fn refuses_others() {
        assert!(parse("ws://10.0.0.1:80/").is_err());
        assert!(parse("ws://8.8.8.8:80/").is_err());
        assert!(parse("ws://192.168.1.1/").is_err());
        assert!(parse("wss://10.0.0.1:1/").is_err());
        assert!(parse("http://127.0.0.1:1/").is_err());
        assert!(parse("ws://user@127.0.0.1:1/").is_err());
        assert!(parse("ws:///").is_err());
    }
}
