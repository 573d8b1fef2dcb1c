//! The part of Python's `ipaddress` that Salt's ipcidr matching uses:
//! `ip_address()`, `ip_network()` (strict), `str()` of an address and
//! `address in network`, with Python's parsing rules (no leading zeros in
//! IPv4 octets, netmask and hostmask forms, IPv6 scope ids).

use std::net::Ipv6Addr;

use brine_proto::Value;

use super::TargetError;

/// An `IPv4Address` or `IPv6Address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    v6: bool,
    bits: u128,
    scope: Option<String>,
}

/// An `IPv4Network` or `IPv6Network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    v6: bool,
    network: u128,
    prefix: u32,
}

/// What an ipcidr target is: an address or a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpTarget {
    Addr(Addr),
    Net(Net),
}

impl IpTarget {
    /// `ipaddress.ip_address(t)`, else `ipaddress.ip_network(t)`; `None`
    /// where Salt logs "Invalid IP/CIDR target".
    pub fn parse(t: &str) -> Option<IpTarget> {
        Addr::parse(t)
            .map(IpTarget::Addr)
            .or_else(|| Net::parse(t).map(IpTarget::Net))
    }

    /// The grain the target is matched against: `ipv4` or `ipv6`.
    pub fn proto(&self) -> &'static str {
        let v6 = match self {
            IpTarget::Addr(a) => a.v6,
            IpTarget::Net(n) => n.v6,
        };
        if v6 {
            "ipv6"
        } else {
            "ipv4"
        }
    }

    /// Salt's test of a minion's grains: `proto not in grains` is no
    /// match, else [`IpTarget::matches_grain`] on `grains[proto]`.
    pub fn matches_grains(&self, grains: &Value) -> Result<bool, TargetError> {
        let proto = self.proto();
        let not_a_dict = || TargetError::Invalid(format!("grains {grains:?} are not a dict"));
        match grains {
            Value::Map(pairs) => match pairs.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == proto)) {
                Some((_, v)) => self.matches_grain(v),
                None => Ok(false),
            },
            Value::Str(s) if !s.contains(proto) => Ok(false),
            Value::Array(items) if !items.iter().any(|i| matches!(i, Value::Str(s) if s == proto)) => Ok(false),
            _ => Err(not_a_dict()),
        }
    }

    /// Salt's test of one minion's `ipv4`/`ipv6` grain: an address is
    /// looked up with `str(address) in grain`, a network with
    /// `salt.utils.network.in_subnet`. Errors are Python's exceptions.
    pub fn matches_grain(&self, grain: &Value) -> Result<bool, TargetError> {
        match self {
            IpTarget::Addr(a) => {
                let s = a.to_string();
                match grain {
                    Value::Array(items) => Ok(items.iter().any(|i| matches!(i, Value::Str(x) if *x == s))),
                    Value::Str(x) => Ok(x.contains(&s)),
                    Value::Map(pairs) => Ok(pairs.iter().any(|(k, _)| matches!(k, Value::Str(x) if *x == s))),
                    other => Err(TargetError::Invalid(format!(
                        "cannot look for an address in the grain value {other:?}"
                    ))),
                }
            }
            IpTarget::Net(n) => {
                let one = std::slice::from_ref(grain);
                let items = match grain {
                    Value::Array(items) => items.as_slice(),
                    _ => one,
                };
                // `any()` stops at the first address inside the network; an
                // unparsable one before it raises.
                for item in items {
                    let a = Addr::from_value(item)
                        .ok_or_else(|| TargetError::Invalid(format!("{item:?} does not appear to be an IP address")))?;
                    if n.contains(&a) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }
}

fn parse_v4(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut out: u32 = 0;
    for p in parts {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if p.len() > 1 && p.starts_with('0') {
            return None;
        }
        let o: u32 = p.parse().ok()?;
        if o > 255 {
            return None;
        }
        out = out << 8 | o;
    }
    Some(out)
}

fn parse_v6(s: &str) -> Option<(u128, Option<String>)> {
    let (addr, scope) = match s.split_once('%') {
        None => (s, None),
        Some((a, sc)) => {
            if sc.is_empty() || sc.contains('%') {
                return None;
            }
            (a, Some(sc.to_string()))
        }
    };
    if !addr.contains(':') {
        return None;
    }
    // An embedded IPv4 tail follows Python's IPv4 rules.
    if let Some((_, tail)) = addr.rsplit_once(':') {
        if tail.contains('.') {
            parse_v4(tail)?;
        }
    }
    let ip: Ipv6Addr = addr.parse().ok()?;
    Some((u128::from(ip), scope))
}

impl Addr {
    /// `ipaddress.ip_address(text)`.
    pub fn parse(s: &str) -> Option<Addr> {
        if let Some(v4) = parse_v4(s) {
            return Some(Addr {
                v6: false,
                bits: u128::from(v4),
                scope: None,
            });
        }
        parse_v6(s).map(|(bits, scope)| Addr { v6: true, bits, scope })
    }

    /// `ipaddress.ip_address(value)` for a grain item: text, an integer
    /// (IPv4 below 2**32) or packed bytes.
    pub fn from_value(v: &Value) -> Option<Addr> {
        let int = |n: u128| Addr {
            v6: n > u128::from(u32::MAX),
            bits: n,
            scope: None,
        };
        match v {
            Value::Str(s) => Addr::parse(s),
            Value::Bool(b) => Some(int(u128::from(*b))),
            Value::Int(i) => u128::try_from(*i).ok().map(int),
            Value::UInt(u) => Some(int(u128::from(*u))),
            Value::Bytes(b) if b.len() == 4 => Some(Addr {
                v6: false,
                bits: u128::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                scope: None,
            }),
            Value::Bytes(b) if b.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Some(Addr {
                    v6: true,
                    bits: u128::from_be_bytes(a),
                    scope: None,
                })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Addr {
    /// Python's `str()`: dotted quad, or the compressed IPv6 form (the
    /// longest run of two or more zero groups, the first of equals,
    /// becomes `::`; IPv4-mapped addresses stay hexadecimal) and `%scope`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.v6 {
            let b = (self.bits as u32).to_be_bytes();
            return write!(f, "{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
        }
        let groups: Vec<u16> = (0..8).map(|i| (self.bits >> (112 - 16 * i)) as u16).collect();
        let (mut best, mut best_len) = (None, 0);
        let mut i = 0;
        while i < 8 {
            if groups[i] == 0 {
                let start = i;
                while i < 8 && groups[i] == 0 {
                    i += 1;
                }
                if i - start > best_len {
                    best = Some(start);
                    best_len = i - start;
                }
            } else {
                i += 1;
            }
        }
        let hex = |g: &[u16]| g.iter().map(|x| format!("{x:x}")).collect::<Vec<_>>().join(":");
        match best.filter(|_| best_len > 1) {
            Some(start) => write!(f, "{}::{}", hex(&groups[..start]), hex(&groups[start + best_len..]))?,
            None => write!(f, "{}", hex(&groups))?,
        }
        if let Some(scope) = &self.scope {
            write!(f, "%{scope}")?;
        }
        Ok(())
    }
}

impl Net {
    /// `ipaddress.ip_network(text)` (strict: host bits must be zero).
    pub fn parse(s: &str) -> Option<Net> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 2 {
            return None;
        }
        let mask = parts.get(1).copied();
        if let Some(a) = parse_v4(parts[0]) {
            let prefix = match mask {
                None => 32,
                Some(m) => v4_prefix(m)?,
            };
            return Net::strict(false, u128::from(a), prefix);
        }
        // A scoped address is no network here.
        if parts[0].contains('%') {
            return None;
        }
        let (a, _) = parse_v6(parts[0])?;
        let prefix = match mask {
            None => 128,
            Some(m) => prefix_digits(m, 128)?,
        };
        Net::strict(true, a, prefix)
    }

    fn strict(v6: bool, addr: u128, prefix: u32) -> Option<Net> {
        let width = if v6 { 128 } else { 32 };
        let host_bits = width - prefix;
        let mask = if host_bits >= 128 {
            0
        } else {
            (u128::MAX << host_bits) & (u128::MAX >> (128 - width))
        };
        (addr & mask == addr).then_some(Net {
            v6,
            network: addr,
            prefix,
        })
    }

    pub fn contains(&self, a: &Addr) -> bool {
        if a.v6 != self.v6 {
            return false;
        }
        let width = if self.v6 { 128 } else { 32 };
        let host_bits = width - self.prefix;
        let mask = if host_bits >= 128 { 0 } else { u128::MAX << host_bits };
        a.bits & mask == self.network & mask
    }
}

/// A prefix length as Python reads it: ASCII digits (leading zeros
/// allowed), at most `max`.
fn prefix_digits(m: &str, max: u32) -> Option<u32> {
    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = m.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    let p: u32 = digits.parse().ok()?;
    (p <= max).then_some(p)
}

/// An IPv4 mask: a prefix length, a netmask (`255.255.0.0`) or a
/// hostmask (`0.0.255.255`).
fn v4_prefix(m: &str) -> Option<u32> {
    if let Some(p) = prefix_digits(m, 32) {
        return Some(p);
    }
    if m.bytes().all(|b| b.is_ascii_digit()) && !m.is_empty() {
        // All digits but out of range: Python refuses without trying the
        // dotted forms.
        return None;
    }
    let ip = parse_v4(m)?;
    let from_netmask = |x: u32| -> Option<u32> {
        let ones = x.leading_ones();
        (x.checked_shl(ones).unwrap_or(0) == 0).then_some(ones)
    };
    from_netmask(ip).or_else(|| from_netmask(!ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Option<String> {
        Addr::parse(t).map(|a| a.to_string())
    }

    #[test]
    fn addresses_parse_and_print_as_python_does() {
        assert_eq!(s("10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(s("010.0.0.1"), None);
        assert_eq!(s("10.0.0.256"), None);
        assert_eq!(s("10.0.0"), None);
        assert_eq!(s("2001:DB8:0:0:1::1").as_deref(), Some("2001:db8::1:0:0:1"));
        assert_eq!(s("2001:db8:0:1:0:0:0:1").as_deref(), Some("2001:db8:0:1::1"));
        assert_eq!(s("2001:db8:1:1:1:1:0:1").as_deref(), Some("2001:db8:1:1:1:1:0:1"));
        assert_eq!(s("::").as_deref(), Some("::"));
        assert_eq!(s("::ffff:1.2.3.4").as_deref(), Some("::ffff:102:304"));
        assert_eq!(s("fe80::1%eth0").as_deref(), Some("fe80::1%eth0"));
        assert_eq!(s("fe80::1%"), None);
    }

    #[test]
    fn networks_are_strict() {
        assert!(Net::parse("10.0.0.0/8").is_some());
        assert!(Net::parse("10.0.0.1/8").is_none(), "host bits set");
        assert!(Net::parse("10.0.0.0/255.0.0.0").is_some());
        assert!(Net::parse("10.0.0.0/0.255.255.255").is_some());
        assert!(Net::parse("10.0.0.0/255.0.255.0").is_none());
        assert!(Net::parse("10.0.0.0/008").is_some());
        assert!(Net::parse("10.0.0.0/33").is_none());
        assert!(Net::parse("10.0.0.0/").is_none());
        assert!(Net::parse("2001:db8::/32").is_some());
        assert!(Net::parse("2001:db8::1/32").is_none());
        assert!(Net::parse("0.0.0.0/0").is_some());
        let n = Net::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(&Addr::parse("10.200.0.1").unwrap()));
        assert!(!n.contains(&Addr::parse("11.0.0.1").unwrap()));
        assert!(!n.contains(&Addr::parse("::a00:1").unwrap()));
    }

    #[test]
    fn grains_are_matched_as_salt_does() {
        let grain = Value::Array(vec![Value::from("10.0.0.5"), Value::from("127.0.0.1")]);
        let t = IpTarget::parse("10.0.0.0/24").unwrap();
        assert_eq!(t.proto(), "ipv4");
        assert!(t.matches_grain(&grain).unwrap());
        assert!(IpTarget::parse("127.0.0.1").unwrap().matches_grain(&grain).unwrap());
        assert!(!IpTarget::parse("127.0.0.2").unwrap().matches_grain(&grain).unwrap());
        let bad = Value::Array(vec![Value::from("nope"), Value::from("10.0.0.5")]);
        assert!(t.matches_grain(&bad).is_err());
        let bad_after = Value::Array(vec![Value::from("10.0.0.5"), Value::from("nope")]);
        assert!(t.matches_grain(&bad_after).unwrap(), "any() stops at the first hit");
        assert!(IpTarget::parse("10.0.0.5/24").is_none());
    }
}
