//! IP networks (CIDR blocks) as EC2 reports them: canonical network address plus prefix.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4AddrRange};

/// A CIDR block such as `10.0.0.0/16` or `::/0`, always in canonical form (no host bits).
///
/// Parsing, containment and address ranges are `ipnet`'s; what is ours is EC2's rule that a
/// block is stored as its network address: a block with host bits is an error naming the
/// canonical one (CFE compared ranges with what EC2 reports as text, so `10.0.1.5/24` matched
/// nothing), and values read from EC2 are taken leniently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(IpNet);

/// Why a string is not a canonical CIDR block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not of the form `address/prefix` with a valid address and prefix length.
    #[error("is not a CIDR")]
    Syntax,
    /// Valid, but host bits are set (EC2 stores only the network address).
    #[error("has host bits set (did you mean {0}?)")]
    HostBits(Cidr),
}

impl Cidr {
    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// True for IPv6 blocks.
    pub fn is_ipv6(&self) -> bool {
        matches!(self.0, IpNet::V6(_))
    }

    /// Whether `ip` lies inside this block (false across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }

    /// Every address of an IPv4 block of at most 256 addresses (a delegated prefix is a /28,
    /// all of whose addresses are usable); empty for IPv6 and larger blocks.
    pub fn ipv4_addresses(&self) -> Vec<IpAddr> {
        match self.0 {
            IpNet::V4(n) if n.prefix_len() >= 24 => Ipv4AddrRange::new(n.network(), n.broadcast())
                .map(IpAddr::V4)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Parses leniently: host bits are cleared instead of rejected (for values read from EC2).
    pub fn parse_lenient(s: &str) -> Result<Cidr, CidrError> {
        match s.parse::<Cidr>() {
            Ok(c) => Ok(c),
            Err(CidrError::HostBits(c)) => Ok(c),
            Err(e) => Err(e),
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The address as the standard library reads one (no leading zeros: `010.0.0.0` is
        // ambiguous, octal to some readers), then ipnet for the block.
        let (addr, _) = s.split_once('/').ok_or(CidrError::Syntax)?;
        addr.parse::<IpAddr>().map_err(|_| CidrError::Syntax)?;
        let net: IpNet = s.parse().map_err(|_| CidrError::Syntax)?;
        let canonical = Cidr(net.trunc());
        if net.addr() != net.network() {
            return Err(CidrError::HostBits(canonical));
        }
        Ok(canonical)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix())
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read back from our own records (the state file), leniently as from EC2.
impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse_lenient(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_blocks() {
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        assert_eq!(
            "2600:1f18::/56".parse::<Cidr>().unwrap().to_string(),
            "2600:1f18::/56"
        );
    }

    #[test]
    fn a_delegated_prefix_lists_its_sixteen_addresses() {
        let p: Cidr = "10.0.0.48/28".parse().unwrap();
        let all = p.ipv4_addresses();
        assert_eq!(all.len(), 16);
        assert_eq!(all[0].to_string(), "10.0.0.48");
        assert_eq!(all[15].to_string(), "10.0.0.63");
        assert!(all.iter().all(|a| p.contains(*a)));
        assert!("10.0.0.0/16"
            .parse::<Cidr>()
            .unwrap()
            .ipv4_addresses()
            .is_empty());
        assert!("2600::/124"
            .parse::<Cidr>()
            .unwrap()
            .ipv4_addresses()
            .is_empty());
    }

    #[test]
    fn rejects_bad_blocks() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/ 8",
            "x/8",
            "010.0.0.0/8",
            "10.0.0.0/08x",
        ] {
            assert_eq!(bad.parse::<Cidr>(), Err(CidrError::Syntax), "{bad}");
        }
        let e = "10.0.1.5/24".parse::<Cidr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "has host bits set (did you mean 10.0.1.0/24?)"
        );
    }

    #[test]
    fn containment_is_per_family() {
        let c: Cidr = "10.0.4.0/24".parse().unwrap();
        assert!(c.contains("10.0.4.101".parse().unwrap()));
        assert!(!c.contains("10.0.5.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
