//! IPv4 and IPv6 networks as the loader accepts them, for every input that
//! carries them (the loader's configuration, the CNI plugin's, pod specs).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 network, host bits zero; a bare address is a /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr4 {
    pub addr: Ipv4Addr,
    pub len: u8,
}

/// An IPv6 network, host bits zero; a bare address is a /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr6 {
    pub addr: Ipv6Addr,
    pub len: u8,
}

/// "ADDR/LEN" or "ADDR" of one family: the address text, its prefix length
/// (`max` when bare) and the network with host bits cleared, or the reason.
fn parse_network<A, const MAX: u8>(s: &str, family: &str, bits: fn(A) -> u128, from: fn(u128) -> A) -> Result<(A, u8), String>
where
    A: FromStr + fmt::Display + Copy,
{
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().map_err(|_| format!("bad prefix length in {s:?}"))?),
        None => (s, MAX),
    };
    let addr: A = addr.parse().map_err(|_| format!("{s:?} is not an {family} address or CIDR"))?;
    if len > MAX {
        return Err(format!("prefix length {len} in {s:?} is over {MAX}"));
    }
    // The address's bits at the top of a u128, so one mask serves both families.
    let shift = 128 - u32::from(MAX);
    let value = bits(addr) << shift;
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
    if value & !mask != 0 {
        let net = from((value & mask) >> shift);
        return Err(format!("{s:?} has host bits set; did you mean \"{net}/{len}\"?"));
    }
    Ok((addr, len))
}

impl FromStr for Cidr4 {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) =
            parse_network::<Ipv4Addr, 32>(s, "IPv4", |a| u128::from(u32::from(a)), |v| Ipv4Addr::from(v as u32))?;
        Ok(Cidr4 { addr, len })
    }
}

impl FromStr for Cidr6 {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = parse_network::<Ipv6Addr, 128>(s, "IPv6", u128::from, Ipv6Addr::from)?;
        Ok(Cidr6 { addr, len })
    }
}

/// On the wire (and in pod records) a CIDR is its text; one that does not
/// parse fails the whole request, with the reason naming it.
macro_rules! cidr_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.addr, self.len)
            }
        }
    };
}
cidr_text!(Cidr4);
cidr_text!(Cidr6);

/// A list that takes both families ("10.0.0.0/8", "fd00::/8"), split by family.
pub fn split_families<'a, I: IntoIterator<Item = &'a str>>(items: I) -> Result<(Vec<Cidr4>, Vec<Cidr6>), String> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for s in items {
        if s.contains(':') {
            v6.push(s.parse::<Cidr6>()?);
        } else {
            v4.push(s.parse::<Cidr4>()?);
        }
    }
    Ok((v4, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_networks_and_addresses() {
        assert_eq!("10.0.0.0/8".parse(), Ok(Cidr4 { addr: Ipv4Addr::new(10, 0, 0, 0), len: 8 }));
        assert_eq!("192.0.2.7".parse(), Ok(Cidr4 { addr: Ipv4Addr::new(192, 0, 2, 7), len: 32 }));
        assert_eq!("0.0.0.0/0".parse::<Cidr4>().unwrap().to_string(), "0.0.0.0/0");
    }

    #[test]
    fn refuses_with_a_reason() {
        assert!("10.1.2.3/8".parse::<Cidr4>().unwrap_err().contains("did you mean \"10.0.0.0/8\""));
        assert!("10.0.0.0/33".parse::<Cidr4>().unwrap_err().contains("over 32"));
        assert!("10.0.0.0/x".parse::<Cidr4>().unwrap_err().contains("prefix length"));
        assert!("fd00::/8".parse::<Cidr4>().unwrap_err().contains("not an IPv4"));
    }

    #[test]
    fn parses_and_refuses_ipv6_networks() {
        assert_eq!("fd00::/8".parse(), Ok(Cidr6 { addr: "fd00::".parse().unwrap(), len: 8 }));
        assert_eq!("::1".parse(), Ok(Cidr6 { addr: Ipv6Addr::LOCALHOST, len: 128 }));
        assert_eq!("2001:db8::/32".parse::<Cidr6>().unwrap().to_string(), "2001:db8::/32");
        assert!("fd00::1/8".parse::<Cidr6>().unwrap_err().contains("did you mean \"fd00::/8\""));
        assert!("fd00::/129".parse::<Cidr6>().unwrap_err().contains("over 128"));
        assert!("10.0.0.0/8".parse::<Cidr6>().unwrap_err().contains("not an IPv6"));
    }

    #[test]
    fn a_mixed_list_splits_by_family() {
        let (v4, v6) = split_families(["10.0.0.0/8", "fd00::/8", "::1"]).unwrap();
        assert_eq!(v4, vec!["10.0.0.0/8".parse::<Cidr4>().unwrap()]);
        assert_eq!(v6.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["fd00::/8", "::1/128"]);
        assert!(split_families(["fd00::1/8"]).unwrap_err().contains("host bits"));
    }
}
