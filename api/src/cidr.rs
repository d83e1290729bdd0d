//! IPv4 networks as the loader accepts them, for every input that carries
//! them (the loader's configuration, the CNI plugin's, pod specs).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network, host bits zero; a bare address is a /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr4 {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl FromStr for Cidr4 {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| format!("bad prefix length in {s:?}"))?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{s:?} is not an IPv4 address or CIDR"))?;
        if len > 32 {
            return Err(format!("prefix length {len} in {s:?} is over 32"));
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if u32::from(addr) & !mask != 0 {
            let net = Ipv4Addr::from(u32::from(addr) & mask);
            return Err(format!("{s:?} has host bits set; did you mean \"{net}/{len}\"?"));
        }
        Ok(Cidr4 { addr, len })
    }
}

/// On the wire (and in pod records) a CIDR is its text; one that does not
/// parse fails the whole request, with the reason naming it.
impl serde::Serialize for Cidr4 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr4 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
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
}
