//! Where a client reaches the master, and how any tcp endpoint of the
//! master is written (shared with the roles that bind them).

use std::net::Ipv6Addr;

use brine_config::MasterConfig;

/// `host` without brackets, if it is an IPv6 literal.
fn ipv6_literal(host: &str) -> Option<Ipv6Addr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse().ok()
}

/// `tcp://host:port`, an IPv6 literal in brackets (Salt's
/// `salt.utils.network.ip_bracket`); a name or IPv4 address as it is.
pub fn tcp_url(host: &str, port: u16) -> String {
    match ipv6_literal(host) {
        Some(ip) => format!("tcp://[{ip}]:{port}"),
        None => format!("tcp://{host}:{port}"),
    }
}

/// The address a local client connects to for a master bound on
/// `interface`: the bind-all addresses mean this host's loopback, as
/// Salt's `client_config` maps them (`0.0.0.0` → `127.0.0.1`, `::` →
/// `::1`).
pub fn connect_host(interface: &str) -> &str {
    match ipv6_literal(interface) {
        Some(ip) if ip.is_unspecified() => "::1",
        _ if interface == "0.0.0.0" => "127.0.0.1",
        _ => interface,
    }
}

/// Whether a ZeroMQ socket on `host` must be an IPv6 one (`ZMQ_IPV6`, the
/// opposite of Salt's `IPV4ONLY`): when the `ipv6` option is True, or the
/// address is an IPv6 literal, which an IPv4-only socket cannot bind or
/// reach (Salt's request client tests `ipv6 is True or ":" in master_ip`).
pub fn wants_ipv6(host: &str, ipv6_option: Option<bool>) -> bool {
    ipv6_option == Some(true) || ipv6_literal(host).is_some()
}

/// A master's request port as a client reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddr {
    host: String,
    port: u16,
    ipv6: bool,
}

impl MasterAddr {
    /// `host:port`; `ipv6_option` is the `ipv6` option, if known.
    pub fn new(host: &str, port: u16, ipv6_option: Option<bool>) -> MasterAddr {
        MasterAddr {
            host: host.to_string(),
            port,
            ipv6: wants_ipv6(host, ipv6_option),
        }
    }

    /// The request port (`ret_port`) of the master configured by `cfg`, as
    /// a client on the master's host reaches it.
    pub fn ret_port(cfg: &MasterConfig) -> MasterAddr {
        MasterAddr::new(connect_host(&cfg.interface), cfg.ret_port, cfg.ipv6)
    }

    /// The ZeroMQ endpoint, `tcp://host:port`.
    pub fn url(&self) -> String {
        tcp_url(&self.host, self.port)
    }

    /// Whether the socket must be an IPv6 one.
    pub fn ipv6(&self) -> bool {
        self.ipv6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6_only() {
        assert_eq!(tcp_url("127.0.0.1", 4506), "tcp://127.0.0.1:4506");
        assert_eq!(tcp_url("::1", 4506), "tcp://[::1]:4506");
        assert_eq!(tcp_url("[::1]", 4506), "tcp://[::1]:4506");
        assert_eq!(tcp_url("fe80::1", 1), "tcp://[fe80::1]:1");
        assert_eq!(tcp_url("salt.example.com", 4506), "tcp://salt.example.com:4506");
        assert_eq!(tcp_url("0.0.0.0", 4505), "tcp://0.0.0.0:4505");
    }

    #[test]
    fn bind_all_maps_to_loopback() {
        assert_eq!(connect_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(connect_host("::"), "::1");
        assert_eq!(connect_host("[::]"), "::1");
        assert_eq!(connect_host("0:0:0:0:0:0:0:0"), "::1");
        assert_eq!(connect_host("::1"), "::1");
        assert_eq!(connect_host("10.1.2.3"), "10.1.2.3");
        assert_eq!(connect_host("salt"), "salt");
    }

    #[test]
    fn ipv6_sockets_for_ipv6_literals_or_the_option() {
        assert!(!wants_ipv6("127.0.0.1", None));
        assert!(!wants_ipv6("127.0.0.1", Some(false)));
        assert!(wants_ipv6("0.0.0.0", Some(true)));
        assert!(wants_ipv6("::1", None));
        assert!(wants_ipv6("::1", Some(false)));
        assert!(wants_ipv6("[::]", None));
        assert!(!wants_ipv6("salt", None));
        let a = MasterAddr::new("::", 4506, None);
        assert_eq!((a.url(), a.ipv6()), ("tcp://[::]:4506".to_string(), true));
    }
}
