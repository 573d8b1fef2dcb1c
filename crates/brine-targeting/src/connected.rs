//! Which minions are connected, as Salt's `CkMinions.connected_ids` tells
//! it (for `max_minions`): the minions in the data cache with an `ipv4` or
//! `ipv6` grain among the remote addresses of the established TCP
//! connections to `publish_port` (and, with `detect_remote_minions`, of
//! connections to `remote_minions_port`). A connection from the loopback
//! address stands for every non-loopback address of the host, as in Salt.
//! Salt asks `ss` first and reads `/proc/net/tcp{,6}` without it; Brine
//! reads those files (the same connections, no subprocess).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use brine_cache::MinionCache;
use brine_config::MasterConfig;
use brine_proto::Value;

/// The connected minion ids (empty without `minion_data_cache`).
pub fn connected_ids(cfg: &MasterConfig) -> HashSet<String> {
    connected_with_ip(cfg).into_iter().map(|(id, _)| id).collect()
}

/// Each connected minion with the address it is connected from (its
/// first `ipv4` or `ipv6` grain among the connections'), as Salt's
/// `connected_ids(show_ip=True)`.
pub fn connected_with_ip(cfg: &MasterConfig) -> Vec<(String, String)> {
    let mut minions = Vec::new();
    if !cfg.get_bool("minion_data_cache").unwrap_or(true) {
        return minions;
    }
    let cache = MinionCache::new(&cfg.cachedir);
    let Ok(ids) = cache.list() else {
        return minions;
    };
    let mut addrs = remotes_on(cfg.publish_port, End::Local);
    if cfg.get_bool("detect_remote_minions").unwrap_or(false) {
        let port = cfg.get_u64("remote_minions_port").unwrap_or(22) as u16;
        addrs.extend(remotes_on(port, End::Remote));
    }
    if addrs.remove("127.0.0.1") {
        addrs.extend(host_addrs(false));
    }
    if addrs.remove("::1") {
        addrs.extend(host_addrs(true));
    }
    for id in ids {
        let Ok(data) = cache.fetch(&id, "data") else {
            continue;
        };
        let grains = data.get("grains");
        let listed = |key: &str| match grains.and_then(|g| g.get(key)) {
            Some(Value::Array(ips)) => ips
                .iter()
                .filter_map(Value::as_str)
                .find(|ip| addrs.contains(*ip))
                .map(String::from),
            _ => None,
        };
        if let Some(ip) = listed("ipv4").or_else(|| listed("ipv6")) {
            minions.push((id, ip));
        }
    }
    minions
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Connections to this host's `port`.
    Local,
    /// Connections from this host to a remote `port`.
    Remote,
}

/// Remote addresses of the ESTABLISHED TCP connections on `port` (an
/// IPv4-mapped IPv6 address as IPv4).
fn remotes_on(port: u16, end: End) -> HashSet<String> {
    established(port, end).into_iter().collect()
}

/// The remote address of each ESTABLISHED TCP connection on `port`, one
/// entry per connection, IPv4 and IPv6.
fn established(port: u16, end: End) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        out.extend(text.lines().skip(1).filter_map(|l| parse_tcp_line(l, port, end)));
    }
    out
}

/// How many ESTABLISHED TCP connections this host accepted on `port`.
pub fn connections_to(port: u16) -> usize {
    established(port, End::Local).len()
}

/// One line of /proc/net/tcp{,6}: `sl local rem st …`, addresses as
/// `HEX:PORT` with the address in 32-bit words of host byte order.
fn parse_tcp_line(line: &str, port: u16, end: End) -> Option<String> {
    let mut f = line.split_whitespace();
    let (local, remote, state) = (f.nth(1)?, f.next()?, f.next()?);
    if state != "01" {
        return None;
    }
    let port_of = |a: &str| a.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    let matched = match end {
        End::Local => port_of(local)?,
        End::Remote => port_of(remote)?,
    };
    if matched != port {
        return None;
    }
    let (hex, _) = remote.rsplit_once(':')?;
    let words: Vec<[u8; 4]> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).map(u32::to_ne_bytes))
        .collect::<Result<_, _>>()
        .ok()?;
    let ip = match words.as_slice() {
        [w] => IpAddr::V4(Ipv4Addr::from(*w)),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(w);
            }
            let v6 = Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(ip.to_string())
}

/// The host's non-loopback addresses (Salt's `ip_addrs` / `ip_addrs6`
/// with `include_loopback=False`).
fn host_addrs(v6: bool) -> Vec<String> {
    let Ok(ifaddrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ifa in ifaddrs {
        let Some(addr) = ifa.address else { continue };
        let ip = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
            (Some(a), _) if !v6 => IpAddr::V4(a.ip()),
            (_, Some(a)) if v6 => IpAddr::V6(a.ip()),
            _ => continue,
        };
        if !ip.is_loopback() && !out.contains(&ip.to_string()) {
            out.push(ip.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines() {
        // 127.0.0.1:4505 <- 127.0.0.1:53940, ESTABLISHED.
        let v4 = "   3: 0100007F:1199 0100007F:D2B4 01 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 20 4 30 10 -1";
        assert_eq!(parse_tcp_line(v4, 4505, End::Local).as_deref(), Some("127.0.0.1"));
        assert_eq!(parse_tcp_line(v4, 4506, End::Local), None);
        assert_eq!(parse_tcp_line(v4, 53940, End::Remote).as_deref(), Some("127.0.0.1"));
        let listening = v4.replace(" 01 ", " 0A ");
        assert_eq!(parse_tcp_line(&listening, 4505, End::Local), None);
        // ::ffff:10.1.2.3 and 2001:db8::1 as remote ends of tcp6 lines.
        let mapped = "   0: 00000000000000000000000000000000:1199 0000000000000000FFFF00000302010A:D2B4 01 0 0 0 0 0 0";
        assert_eq!(parse_tcp_line(mapped, 4505, End::Local).as_deref(), Some("10.1.2.3"));
        let v6 = "   0: 00000000000000000000000000000000:1199 B80D0120000000000000000001000000:D2B4 01 0 0 0 0 0 0";
        assert_eq!(parse_tcp_line(v6, 4505, End::Local).as_deref(), Some("2001:db8::1"));
    }
}
