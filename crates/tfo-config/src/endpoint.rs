//! Address checks done at load, so a bad address is a config error (exit 2, key and line)
//! rather than a connection failure much later.
//!
//! [`check_endpoint`] accepts exactly what the exporter's endpoint parser
//! (`tfo-exporter/src/grpc.rs`, `parse_endpoint`) turns into a host and port, minus what
//! would only fail at connect time: `host[:port]`, `[v6][:port]`, and the same after
//! `http://` or `https://` with an optional path. [`check_url`] is the platform base URL as
//! the platform client accepts it, [`check_listen_address`] what the agent can bind.
//! This crate does not depend on the exporter; the grammar is written out here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What `telemetryflow.endpoint` accepts.
pub const ENDPOINT_ALLOWED: &str = "host:port, [IPv6]:port, or http(s)://host:port[/path], \
     port 1-65535 (default 4317 for grpc, 4318 for http), e.g. localhost:4317";

/// What `telemetryflow.api_endpoint` accepts.
pub const URL_ALLOWED: &str = "an http:// or https:// URL with a host, an optional port \
     1-65535 and path, no user, query or fragment, e.g. https://api.telemetryflow.example";

/// What the listen addresses accept.
pub const LISTEN_ALLOWED: &str = "IP:port with a numeric IP and port 0-65535 (0 picks a free \
     port), e.g. 127.0.0.1:8888, 0.0.0.0:8888 or [::1]:8888";

/// Checks an OTLP collector address.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.is_empty() {
        return Err("must not be empty".to_string());
    }
    let (rest, has_scheme) = match endpoint.split_once("://") {
        Some((scheme, rest)) => {
            if scheme != "http" && scheme != "https" {
                return Err(format!(
                    "`{endpoint}`: unsupported scheme `{scheme}://`; use host:port, http:// or https://"
                ));
            }
            (rest, true)
        }
        None => (endpoint, false),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    if path.is_some() && !has_scheme {
        return Err(format!(
            "`{endpoint}`: a path is only allowed in a URL (http:// or https://)"
        ));
    }
    if let Some(path) = path {
        check_path(endpoint, path)?;
    }
    check_authority(endpoint, authority, PortRule::Optional { zero: false })
}

/// Checks the platform API base URL.
pub fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{url}` is not an http(s) URL (it needs http:// or https://)"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{url}` is not an http(s) URL (scheme `{scheme}`)"));
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(format!("`{url}`: a query or fragment is not allowed"));
    }
    check_path(url, path)?;
    check_authority(url, authority, PortRule::Optional { zero: false })
}

/// Checks a local address to listen on.
pub fn check_listen_address(addr: &str) -> Result<(), String> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    check_authority(addr, addr, PortRule::Required { zero: true })?;
    // Syntactically fine but not numeric: a host name.
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    Err(format!(
        "`{addr}`: `{host}` is not an IP address; listen on a numeric address such as 127.0.0.1 (loopback) or 0.0.0.0 (all interfaces)"
    ))
}

#[derive(Clone, Copy)]
enum PortRule {
    Optional { zero: bool },
    Required { zero: bool },
}

fn check_path(whole: &str, path: &str) -> Result<(), String> {
    if let Some(c) = path.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{whole}`: the path contains {}", describe_char(c)));
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn check_authority(whole: &str, authority: &str, rule: PortRule) -> Result<(), String> {
    if authority.is_empty() {
        return Err(format!("`{whole}` has no host"));
    }
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        // The address is echoed in the error: not the credentials in it.
        let shown = whole.replacen(userinfo, "[REDACTED]", 1);
        return Err(format!(
            "`{shown}`: a user name or password in the address is not supported (use telemetryflow.api_key_id and api_key_secret)"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else {
            return Err(format!("`{whole}`: `[` without a closing `]`"));
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{whole}`: `{inside}` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => {
                    return Err(format!(
                        "`{whole}`: expected `:port` after `]`, found `{p}`"
                    ));
                }
            },
        };
        (None, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!(
                    "`{whole}`: an IPv6 address needs brackets, e.g. [::1]:4317"
                ));
            }
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(authority), None),
        }
    };
    if let Some(host) = host {
        check_host(whole, host)?;
    }
    match (port, rule) {
        (None, PortRule::Optional { .. }) => Ok(()),
        (None, PortRule::Required { .. }) => {
            Err(format!("`{whole}` has no port (expected host:port)"))
        }
        (Some(p), PortRule::Optional { zero } | PortRule::Required { zero }) => {
            check_port(whole, p, zero)
        }
    }
}

fn check_port(whole: &str, port: &str, zero_ok: bool) -> Result<(), String> {
    let low = if zero_ok { 0 } else { 1 };
    if port.is_empty() {
        return Err(format!("`{whole}`: missing port after `:`"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{whole}`: port `{port}` is not a number"));
    }
    match port.parse::<u32>() {
        Ok(n) if (low..=65535).contains(&n) => Ok(()),
        _ => Err(format!(
            "`{whole}`: port {port} is out of range (must be {low}-65535)"
        )),
    }
}

/// A DNS name (letters, digits, `-`, `_`, dot-separated labels) or an IPv4 address.
fn check_host(whole: &str, host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("`{whole}` has no host before the port"));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{whole}`: the host `{host}` contains {}",
            describe_char(c)
        ));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err(format!(
            "`{whole}`: the host name is longer than 253 characters"
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!(
                "`{whole}`: the host `{host}` has an empty label (`..`)"
            ));
        }
        if label.len() > 63 {
            return Err(format!(
                "`{whole}`: the host `{host}` has a label longer than 63 characters"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "`{whole}`: the host `{host}` has a label starting or ending with `-`"
            ));
        }
    }
    let numeric = name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if numeric && name.parse::<Ipv4Addr>().is_err() {
        return Err(format!("`{whole}`: `{host}` is not a valid IPv4 address"));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    if c == ' ' {
        "a space".to_string()
    } else if c.is_control() || c.is_whitespace() {
        format!("the character U+{:04X}", c as u32)
    } else {
        format!("`{c}`")
    }
}

/// `localhost:4317`, `127.0.0.1:4317`, `[::1]:4317`, optionally with a scheme.
pub(crate) fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split([':', '/']).next().unwrap_or("")
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_the_exporter_accepts() {
        for ok in [
            "localhost:4317",
            "localhost",
            "127.0.0.1:4317",
            "tfo-collector.telemetryflow.svc.cluster.local:4317",
            "collector.example.:4317",
            "[::1]:4317",
            "[::1]",
            "[2001:db8::1]:443",
            "http://c",
            "https://c.example:443/",
            "https://c.example:443/otlp/prefix",
            "http://[::1]:4318",
            "my_host:1",
            "h:65535",
        ] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn bad_endpoints_say_why() {
        for (bad, why) in [
            ("", "must not be empty"),
            (
                "localhost:99999",
                "port 99999 is out of range (must be 1-65535)",
            ),
            ("localhost:0", "port 0 is out of range"),
            ("localhost:", "missing port"),
            ("localhost:http", "port `http` is not a number"),
            ("host:notaport", "is not a number"),
            (":4317", "has no host"),
            ("::1:4317", "needs brackets"),
            ("[::1", "without a closing `]`"),
            ("[::g]:1", "is not an IPv6 address"),
            ("[::1]4317", "expected `:port` after `]`"),
            ("grpc://c:4317", "unsupported scheme `grpc://`"),
            ("c:4317/v1", "a path is only allowed in a URL"),
            ("http://", "has no host"),
            ("http://u:p@c:4318", "user name or password"),
            ("col lector:4317", "contains a space"),
            ("a..b:1", "empty label"),
            ("-a:1", "starting or ending with `-`"),
            ("999.1.1.1:4317", "not a valid IPv4 address"),
            ("https://c:4318/a b", "the path contains a space"),
        ] {
            let e = check_endpoint(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn platform_urls() {
        for ok in [
            "https://api.telemetryflow.example",
            "http://127.0.0.1:8080/",
            "https://example.com/tfo",
            "http://[::1]:9/x",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("api.example.com", "needs http:// or https://"),
            ("ftp://h", "scheme `ftp`"),
            ("http://u:p@h", "user name or password"),
            ("http://h/?q=1", "query or fragment"),
            ("http://h#x", "query or fragment"),
            ("https://h:70000", "port 70000 is out of range"),
            ("https://", "has no host"),
        ] {
            let e = check_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn listen_addresses() {
        for ok in ["127.0.0.1:8888", "0.0.0.0:0", "[::1]:13133", "[::]:1"] {
            assert_eq!(check_listen_address(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            (
                "127.0.0.1:99999",
                "port 99999 is out of range (must be 0-65535)",
            ),
            ("127.0.0.1", "has no port"),
            (":8888", "has no host"),
            ("localhost:8888", "`localhost` is not an IP address"),
            ("127.0.0.1:x", "is not a number"),
            ("::1:8888", "needs brackets"),
        ] {
            let e = check_listen_address(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("localhost:4317"));
        assert!(is_loopback("http://127.0.0.1:4318/v1"));
        assert!(is_loopback("[::1]:4317"));
        assert!(!is_loopback("collector.example:4317"));
        assert!(!is_loopback("127.example:4317"));
    }
}
