//! What a reverse proxy says about the client, parsed without I/O: the
//! PROXY protocol header (v1 text and v2 binary, as HAProxy and AWS NLB send
//! it), the `Forwarded` (RFC 7239) and `X-Forwarded-For` / `X-Forwarded-Proto`
//! request headers, and the list of peers whose word is taken
//! ([`TrustedProxies`], `--forwarded-allow-ips`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use pagi::Headers;

/// Peers whose proxy headers and PROXY protocol headers are believed: a
/// comma-separated list of addresses and CIDR networks (`127.0.0.1`,
/// `10.0.0.0/8`, `::1`, `fd00::/8`), `*` for any peer, and `unix` for
/// connections on a Unix socket (whose file mode decides who may connect).
///
/// ```
/// let t: pagi_server::TrustedProxies = "127.0.0.1, 10.0.0.0/8, unix".parse().unwrap();
/// assert!(t.trusts(Some("10.1.2.3".parse().unwrap())));
/// assert!(!t.trusts(Some("192.0.2.1".parse().unwrap())));
/// assert!(t.trusts(None)); // a Unix-socket peer
/// assert!("10.0.0.0/33".parse::<pagi_server::TrustedProxies>().is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    any: bool,
    unix: bool,
    nets: Vec<(IpAddr, u8)>,
}

/// Why a [`TrustedProxies`] list did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTrustedProxies(String);

impl fmt::Display for InvalidTrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid proxy address {:?}: expected an IP address, a CIDR network, * or unix",
            self.0
        )
    }
}

impl std::error::Error for InvalidTrustedProxies {}

impl FromStr for TrustedProxies {
    type Err = InvalidTrustedProxies;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut t = TrustedProxies::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "*" => t.any = true,
                "unix" => t.unix = true,
                _ => {
                    let bad = || InvalidTrustedProxies(item.to_owned());
                    let (ip, bits) = match item.split_once('/') {
                        Some((ip, bits)) => (ip, Some(bits.parse::<u8>().map_err(|_| bad())?)),
                        None => (item, None),
                    };
                    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let bits = bits.unwrap_or(max);
                    if bits > max {
                        return Err(bad());
                    }
                    t.nets.push((ip, bits));
                }
            }
        }
        Ok(t)
    }
}

impl TrustedProxies {
    /// Whether a peer is trusted; `None` is a Unix-socket peer.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        if self.any {
            return true;
        }
        let Some(ip) = peer else {
            return self.unix;
        };
        let ip = canonical(ip);
        self.nets
            .iter()
            .any(|&(net, bits)| in_net(ip, canonical(net), bits))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (net >> shift)
}

// ---------------------------------------------------------------------------
// Forwarded headers
// ---------------------------------------------------------------------------

/// What trusted proxy headers say: the client (port 0 when the header gives
/// none) and the scheme the client used (`http`/`https`; a WebSocket scope
/// maps it to `ws`/`wss`). Either may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub(crate) client: Option<SocketAddr>,
    pub(crate) secure: Option<bool>,
}

/// Read the proxy headers of a request that came from a trusted peer:
/// `Forwarded` when present, `X-Forwarded-For` / `X-Forwarded-Proto`
/// otherwise. Of the addresses the chain lists, the client is the last one
/// (nearest to us) that is not itself a trusted proxy, or the first one if
/// all are; the scheme is `X-Forwarded-Proto`'s last value (the one our
/// peer wrote). A header that does not parse is ignored as a whole.
pub(crate) fn forwarded(headers: &Headers, trusted: &TrustedProxies) -> Forwarded {
    if headers.contains("forwarded") {
        return rfc7239(headers, trusted).unwrap_or_default();
    }
    let client = headers
        .get_all("x-forwarded-for")
        .map(|v| std::str::from_utf8(v).ok())
        .collect::<Option<Vec<_>>>()
        .and_then(|values| {
            let hops = values
                .iter()
                .flat_map(|v| v.split(','))
                .map(|h| parse_node(h.trim()))
                .collect::<Option<Vec<_>>>()?;
            pick_client(&hops, trusted)
        });
    // The rightmost value: the one our trusted peer wrote (a client can
    // put anything to the left of it).
    let secure = headers
        .get_all("x-forwarded-proto")
        .last()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| scheme_is_secure(v.rsplit(',').next().unwrap_or("").trim()));
    Forwarded { client, secure }
}

fn scheme_is_secure(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(false),
        "https" | "wss" => Some(true),
        _ => None,
    }
}

/// The client among the hops (left = farthest from us).
fn pick_client(hops: &[SocketAddr], trusted: &TrustedProxies) -> Option<SocketAddr> {
    hops.iter()
        .rev()
        .find(|h| !trusted.trusts(Some(h.ip())))
        .or_else(|| hops.first())
        .copied()
}

/// `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`.
fn rfc7239(headers: &Headers, trusted: &TrustedProxies) -> Option<Forwarded> {
    let mut hops = Vec::new();
    let mut protos = Vec::new();
    for value in headers.get_all("forwarded") {
        let value = std::str::from_utf8(value).ok()?;
        for element in split_outside_quotes(value, ',') {
            let mut hop = None;
            let mut proto = None;
            for pair in split_outside_quotes(element, ';') {
                let (k, v) = pair.split_once('=')?;
                let v = unquote(v.trim())?;
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => hop = Some(parse_node(v)),
                    "proto" => proto = Some(scheme_is_secure(v)?),
                    _ => {}
                }
            }
            // An obfuscated or unknown `for` ends what we can learn.
            hops.push(hop.flatten());
            protos.push(proto);
        }
    }
    // Walk from the nearest hop; stop at the first we cannot place.
    let mut client = None;
    let mut secure = None;
    for (hop, proto) in hops.iter().zip(&protos).rev() {
        let Some(addr) = hop else { break };
        client = Some(*addr);
        secure = proto.or(secure);
        if !trusted.trusts(Some(addr.ip())) {
            break;
        }
    }
    Some(Forwarded { client, secure })
}

fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in r.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                c if c == sep && !quoted => {
                    rest = Some(&r[i + 1..]);
                    return Some(r[..i].trim());
                }
                _ => {}
            }
        }
        rest = None;
        Some(r.trim())
    })
    .filter(|p| !p.is_empty())
}

fn unquote(v: &str) -> Option<&str> {
    match v.strip_prefix('"') {
        Some(inner) => inner.strip_suffix('"').filter(|i| !i.contains('"')),
        None => Some(v),
    }
}

/// A node: `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:80`
/// or a bare IPv6 address (as X-Forwarded-For carries them).
fn parse_node(s: &str) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let ip = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

// ---------------------------------------------------------------------------
// PROXY protocol
// ---------------------------------------------------------------------------

/// What a PROXY protocol header said about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyHeader {
    /// The proxied client's address (and the address it connected to).
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// A connection the proxy made itself (health check), or an address
    /// family we do not map (`UNKNOWN`, `AF_UNIX`): keep the real peer.
    Local,
}

/// The next step of reading a PROXY protocol header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ProxyParse {
    /// Read this many more bytes, then parse again. Never more than the
    /// header still holds, so nothing after it is read.
    Need(usize),
    /// The header, which took this many bytes.
    Done(ProxyHeader, usize),
}

/// Why a PROXY protocol header was refused (the connection is closed).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ProxyError(pub(crate) &'static str);

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header (RFC: 107 bytes including CRLF).
const V1_MAX: usize = 107;

/// Parse the start of a connection as a PROXY protocol header (v1 or v2).
pub(crate) fn parse_proxy_header(buf: &[u8]) -> Result<ProxyParse, ProxyError> {
    // Both versions are at least 15 bytes long: 8 can always be asked for.
    if buf.len() < 8 {
        return Ok(ProxyParse::Need(8 - buf.len()));
    }
    if buf.starts_with(b"PROXY ") {
        return parse_v1(buf);
    }
    if buf[..8] == V2_SIGNATURE[..8] {
        return parse_v2(buf);
    }
    Err(ProxyError("no PROXY protocol header"))
}

fn parse_v1(buf: &[u8]) -> Result<ProxyParse, ProxyError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(ProxyError("PROXY v1 header too long"));
        }
        // At least 15 bytes, then one at a time (the CRLF may come next).
        return Ok(ProxyParse::Need(15usize.saturating_sub(buf.len()).max(1)));
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError("PROXY v1 not ASCII"))?;
    let mut parts = line.split(' ');
    parts.next(); // "PROXY"
    let header = match parts.next() {
        Some("UNKNOWN") => ProxyHeader::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut field = || parts.next().ok_or(ProxyError("PROXY v1 header incomplete"));
            let (src, dst, sport, dport) = (field()?, field()?, field()?, field()?);
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                let ip: IpAddr = s.parse().map_err(|_| ProxyError("PROXY v1 bad address"))?;
                match (family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(ProxyError("PROXY v1 address of the wrong family")),
                }
            };
            let port = |s: &str| -> Result<u16, ProxyError> {
                // No sign, no leading zeros.
                if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
                    return Err(ProxyError("PROXY v1 bad port"));
                }
                s.parse().map_err(|_| ProxyError("PROXY v1 bad port"))
            };
            let header = ProxyHeader::Proxied {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            };
            if parts.next().is_some() {
                return Err(ProxyError("PROXY v1 header has extra fields"));
            }
            header
        }
        _ => return Err(ProxyError("PROXY v1 unknown protocol")),
    };
    Ok(ProxyParse::Done(header, end + 2))
}

fn parse_v2(buf: &[u8]) -> Result<ProxyParse, ProxyError> {
    if buf.len() < 16 {
        return Ok(ProxyParse::Need(16 - buf.len()));
    }
    if buf[..12] != V2_SIGNATURE {
        return Err(ProxyError("no PROXY protocol header"));
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0F);
    if version != 2 {
        return Err(ProxyError("PROXY v2 unknown version"));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if buf.len() < total {
        return Ok(ProxyParse::Need(total - buf.len()));
    }
    let body = &buf[16..total];
    let header = match command {
        0x0 => ProxyHeader::Local,
        0x1 => match buf[13] {
            // TCP or UDP over IPv4.
            0x11 | 0x12 if len >= 12 => {
                let ip = |at: usize| {
                    IpAddr::V4(Ipv4Addr::new(
                        body[at],
                        body[at + 1],
                        body[at + 2],
                        body[at + 3],
                    ))
                };
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                ProxyHeader::Proxied {
                    source: SocketAddr::new(ip(0), port(8)),
                    destination: SocketAddr::new(ip(4), port(10)),
                }
            }
            // TCP or UDP over IPv6.
            0x21 | 0x22 if len >= 36 => {
                let ip = |at: usize| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&body[at..at + 16]);
                    IpAddr::V6(Ipv6Addr::from(b))
                };
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                ProxyHeader::Proxied {
                    source: SocketAddr::new(ip(0), port(32)),
                    destination: SocketAddr::new(ip(16), port(34)),
                }
            }
            0x11 | 0x12 | 0x21 | 0x22 => return Err(ProxyError("PROXY v2 address block short")),
            // UNSPEC, AF_UNIX: nothing we can put in the scope.
            _ => ProxyHeader::Local,
        },
        _ => return Err(ProxyError("PROXY v2 unknown command")),
    };
    Ok(ProxyParse::Done(header, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `wire` as an exact reader would: only the bytes asked for.
    fn read_exactly(wire: &[u8]) -> Result<(ProxyHeader, usize), ProxyError> {
        let mut have = 0;
        loop {
            match parse_proxy_header(&wire[..have])? {
                ProxyParse::Need(n) => {
                    assert!(have + n <= wire.len(), "asked past the header: {have}+{n}");
                    have += n;
                }
                ProxyParse::Done(h, used) => {
                    assert_eq!(used, have, "all bytes read belong to the header");
                    return Ok((h, used));
                }
            }
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_headers_are_read_without_reading_past_them() {
        let mut wire = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".to_vec();
        let n = wire.len();
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            read_exactly(&wire).unwrap(),
            (
                ProxyHeader::Proxied {
                    source: sa("192.0.2.1:56324"),
                    destination: sa("198.51.100.2:443")
                },
                n
            )
        );
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert!(matches!(
            read_exactly(v6).unwrap().0,
            ProxyHeader::Proxied { source, .. } if source == sa("[2001:db8::1]:1")
        ));
        assert_eq!(
            read_exactly(b"PROXY UNKNOWN\r\nGET").unwrap(),
            (ProxyHeader::Local, 15)
        );
    }

    #[test]
    fn bad_v1_headers_are_refused() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 065535 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 70000 2\r\n",
            b"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert!(
                read_exactly(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(
            read_exactly(&long),
            Err(ProxyError("PROXY v1 header too long"))
        );
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut v = V2_SIGNATURE.to_vec();
        v.push(0x20 | command);
        v.push(family);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn v2_headers_ipv4_ipv6_local_and_tlvs() {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0, 1, 0xAA]); // a TLV, skipped
        let mut wire = v2(1, 0x11, &body);
        let n = wire.len();
        wire.extend_from_slice(b"\x16\x03\x01"); // a TLS record behind it
        assert_eq!(
            read_exactly(&wire).unwrap(),
            (
                ProxyHeader::Proxied {
                    source: sa("192.0.2.1:56324"),
                    destination: sa("198.51.100.2:443")
                },
                n
            )
        );
        let mut body6 = Vec::new();
        body6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&[0, 80, 1, 187]);
        assert_eq!(
            read_exactly(&v2(1, 0x21, &body6)).unwrap().0,
            ProxyHeader::Proxied {
                source: sa("[2001:db8::1]:80"),
                destination: sa("[2001:db8::2]:443")
            }
        );
        assert_eq!(
            read_exactly(&v2(0, 0x00, &[])).unwrap().0,
            ProxyHeader::Local
        );
        assert_eq!(
            read_exactly(&v2(1, 0x31, &[0; 216])).unwrap().0,
            ProxyHeader::Local
        );
        assert!(read_exactly(&v2(1, 0x11, &[1, 2, 3])).is_err());
        assert!(read_exactly(&v2(7, 0x11, &body)).is_err());
        let mut v1_version = v2(1, 0x11, &body);
        v1_version[12] = 0x11;
        assert!(read_exactly(&v1_version).is_err());
    }

    fn trusted(s: &str) -> TrustedProxies {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_match_addresses_networks_and_mapped_addresses() {
        let t = trusted("127.0.0.1,10.0.0.0/8, 2001:db8::/32");
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(t.trusts(ip("127.0.0.1")) && t.trusts(ip("10.255.0.1")));
        assert!(t.trusts(ip("::ffff:127.0.0.1")), "IPv4-mapped");
        assert!(t.trusts(ip("2001:db8:1::5")));
        assert!(!t.trusts(ip("127.0.0.2")) && !t.trusts(ip("11.0.0.1")));
        assert!(!t.trusts(None), "unix only when listed");
        assert!(trusted("*").trusts(ip("203.0.113.9")));
        assert!(trusted("0.0.0.0/0").trusts(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "::/129", "example.com", "1.2.3.4/x"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn x_forwarded_for_takes_the_nearest_untrusted_hop() {
        let t = trusted("127.0.0.1,10.0.0.0/8");
        let f = forwarded(
            &hdrs(&[
                ("x-forwarded-for", "203.0.113.7, 198.51.100.9, 10.0.0.2"),
                ("x-forwarded-proto", "https"),
            ]),
            &t,
        );
        assert_eq!(f.client, Some(sa("198.51.100.9:0")));
        assert_eq!(f.secure, Some(true));
        // All hops trusted: the farthest one.
        let f = forwarded(&hdrs(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]), &t);
        assert_eq!(f.client, Some(sa("10.0.0.3:0")));
        // Two header lines are one list; IPv6 with and without brackets.
        let f = forwarded(
            &hdrs(&[
                ("x-forwarded-for", "2001:db8::7"),
                ("x-forwarded-for", "[2001:db8::8]"),
            ]),
            &t,
        );
        assert_eq!(f.client, Some(sa("[2001:db8::8]:0")));
        // A hop that is not an address spoils the header; odd schemes are ignored.
        let f = forwarded(
            &hdrs(&[
                ("x-forwarded-for", "203.0.113.7, unknown"),
                ("x-forwarded-proto", "gopher"),
            ]),
            &t,
        );
        assert_eq!(f, Forwarded::default());
    }

    #[test]
    fn x_forwarded_proto_is_the_value_our_peer_wrote() {
        let t = trusted("127.0.0.1");
        // A client's own value to the left of the proxy's is not believed.
        let f = forwarded(&hdrs(&[("x-forwarded-proto", "https, http")]), &t);
        assert_eq!(f.secure, Some(false));
        let f = forwarded(
            &hdrs(&[
                ("x-forwarded-proto", "http"),
                ("x-forwarded-proto", "https"),
            ]),
            &t,
        );
        assert_eq!(f.secure, Some(true));
    }

    #[test]
    fn rfc7239_forwarded_wins_and_handles_quotes_ports_and_obfuscation() {
        let t = trusted("127.0.0.1");
        let f = forwarded(
            &hdrs(&[
                (
                    "forwarded",
                    r#"for=192.0.2.60;proto=https;by=203.0.113.43, for="[2001:db8:cafe::17]:4711""#,
                ),
                ("x-forwarded-for", "198.51.100.1"),
            ]),
            &t,
        );
        assert_eq!(f.client, Some(sa("[2001:db8:cafe::17]:4711")));
        let f = forwarded(
            &hdrs(&[("forwarded", "for=192.0.2.60;proto=https, for=127.0.0.1")]),
            &t,
        );
        assert_eq!(f.client, Some(sa("192.0.2.60:0")));
        assert_eq!(f.secure, Some(true));
        // An obfuscated identifier nearest to us: nothing can be said.
        let f = forwarded(&hdrs(&[("forwarded", "for=192.0.2.60, for=_hidden")]), &t);
        assert_eq!(f.client, None);
        // Malformed: ignored as a whole.
        let f = forwarded(&hdrs(&[("forwarded", "for")]), &t);
        assert_eq!(f, Forwarded::default());
        let f = forwarded(&hdrs(&[("forwarded", r#"for="192.0.2.1;proto=https"#)]), &t);
        assert_eq!(f, Forwarded::default());
    }
}
