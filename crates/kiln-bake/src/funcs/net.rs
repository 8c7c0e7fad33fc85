//! Bake's CIDR functions, as buildx gets them from go-cty-funcs (Go's
//! `net.ParseCIDR` and the go-cidr package), for IPv4 and IPv6 alike.
//!
//! Addresses are held as a `u128` with their width (32 or 128 bits); Go's quirk of
//! printing IPv4-mapped IPv6 addresses in dotted form is kept.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hcl::Value;
use hcl::eval::FuncArgs;

use super::{Entry, Result, all, integer, string};

pub(crate) const TABLE: &[Entry] = &[
    ("cidrhost", 2, false, f_cidrhost),
    ("cidrnetmask", 1, false, f_cidrnetmask),
    ("cidrsubnet", 3, false, f_cidrsubnet),
    ("cidrsubnets", 1, true, f_cidrsubnets),
];

/// An address prefix: the network address (host bits clear), its width and its
/// prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: u128,
    bits: u32,
    len: u32,
}

/// The lowest `n` bits set.
fn low_bits(n: u32) -> u128 {
    u128::MAX.checked_shr(128 - n).unwrap_or(0)
}

/// The mask of a `len`-bit prefix in a `bits`-wide address.
fn mask(len: u32, bits: u32) -> u128 {
    low_bits(bits) & !low_bits(bits - len)
}

impl Net {
    /// Go's `net.ParseCIDR`, keeping only the network.
    fn parse(s: &str) -> Result<Net> {
        let invalid = || format!("invalid CIDR expression: invalid CIDR address: {s}");
        let (addr, len) = s.split_once('/').ok_or_else(invalid)?;
        let (addr, bits) = match addr.parse::<IpAddr>().map_err(|_| invalid())? {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        // Go reads the length as plain decimal digits (leading zeros allowed).
        if len.is_empty() || !len.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        let len: u32 = len.parse().map_err(|_| invalid())?;
        if len > bits {
            return Err(invalid());
        }
        Ok(Net {
            addr: addr & mask(len, bits),
            bits,
            len,
        })
    }

    /// The `len`-bit block holding `addr`, in this prefix's address family.
    fn block(self, addr: u128, len: u32) -> Net {
        Net {
            addr: addr & mask(len, self.bits),
            len,
            ..self
        }
    }

    /// The prefix's last address.
    fn last(&self) -> u128 {
        self.addr | low_bits(self.bits - self.len)
    }

    fn contains(&self, addr: u128) -> bool {
        addr & mask(self.len, self.bits) == self.addr
    }

    /// Go's `IPNet.String`: an IPv4-mapped network prints as IPv4, its length
    /// counted within the IPv4 part.
    fn to_go_string(self) -> String {
        match v4_mapped(self.addr, self.bits) {
            Some(v4) => format!("{v4}/{}", self.len.saturating_sub(96)),
            None => format!("{}/{}", ip_string(self.addr, self.bits), self.len),
        }
    }
}

fn v4_mapped(addr: u128, bits: u32) -> Option<Ipv4Addr> {
    (bits == 128)
        .then(|| Ipv6Addr::from(addr).to_ipv4_mapped())
        .flatten()
}

/// Go's `IP.String`.
fn ip_string(addr: u128, bits: u32) -> String {
    if bits == 32 {
        return Ipv4Addr::from(addr as u32).to_string();
    }
    match v4_mapped(addr, bits) {
        Some(v4) => v4.to_string(),
        None => Ipv6Addr::from(addr).to_string(),
    }
}

/// `cidrhost(prefix, hostnum)`: a negative number counts back from the last address.
fn f_cidrhost(args: FuncArgs) -> Result<Value> {
    let num = integer(&args[1])?;
    let net = Net::parse(&string(&args[0])?)?;
    let max = low_bits(net.bits - net.len);
    // go-cidr: host -n is host (max - (n - 1)).
    let offset = if num < 0 {
        i128::from(num).unsigned_abs() - 1
    } else {
        num as u128
    };
    if offset > max {
        let shown = if num < 0 {
            max as i128 - offset as i128
        } else {
            i128::from(num)
        };
        return Err(format!(
            "prefix of {} does not accommodate a host numbered {shown}",
            net.len
        ));
    }
    let host = if num < 0 { max - offset } else { offset };
    Ok(Value::String(ip_string(net.addr | host, net.bits)))
}

fn f_cidrnetmask(args: FuncArgs) -> Result<Value> {
    let net = Net::parse(&string(&args[0])?)?;
    Ok(Value::String(ip_string(mask(net.len, net.bits), net.bits)))
}

/// `cidrsubnet(prefix, newbits, netnum)`. go-cidr would turn a negative `newbits` or
/// `netnum` into garbage addresses; kiln rejects them instead.
fn f_cidrsubnet(args: FuncArgs) -> Result<Value> {
    let newbits = integer(&args[1])?;
    let num = integer(&args[2])?;
    let net = Net::parse(&string(&args[0])?)?;
    if newbits > 32 {
        return Err("may not extend prefix by more than 32 bits".to_owned());
    }
    if newbits < 0 {
        return Err(format!("may not shorten a prefix (newbits {newbits})"));
    }
    let newbits = newbits as u32;
    let len = net.len + newbits;
    if len > net.bits {
        return Err(format!(
            "insufficient address space to extend prefix of {} by {newbits}",
            net.len
        ));
    }
    if num < 0 || num as u64 > (1u64 << newbits) - 1 {
        return Err(format!(
            "prefix extension of {newbits} does not accommodate a subnet numbered {num}"
        ));
    }
    let subnet = Net {
        addr: net.addr | ((num as u128) << (net.bits - len)),
        bits: net.bits,
        len,
    };
    Ok(Value::String(subnet.to_go_string()))
}

/// `cidrsubnets(prefix, newbits...)`: consecutive subnets, each aligned to its own
/// size right after the previous one (go-cidr's `NextSubnet`).
fn f_cidrsubnets(args: FuncArgs) -> Result<Value> {
    let net = Net::parse(&string(&args[0])?)?;
    let lengths = all(&args)[1..]
        .iter()
        .map(integer)
        .collect::<Result<Vec<_>>>()?;
    let Some(&first) = lengths.first() else {
        return Ok(Value::Array(Vec::new()));
    };
    // go-cidr's `PreviousSubnet`: the block of the first size just below the prefix
    // (wrapping below address zero).
    let first_len = (i64::from(net.len) + first).clamp(0, i64::from(net.bits)) as u32;
    let below = net.addr.wrapping_sub(1) & low_bits(net.bits);
    let mut current = net.block(below, first_len);
    let mut out = Vec::new();
    for newbits in lengths {
        if newbits < 1 {
            return Err("must extend prefix by at least one bit".to_owned());
        }
        if newbits > 32 {
            return Err("may not extend prefix by more than 32 bits".to_owned());
        }
        let len = net.len + newbits as u32;
        if len > net.bits {
            let protocol = if net.bits == 32 { "IPv4" } else { "IPv6" };
            return Err(format!(
                "would extend prefix to {len} bits, which is too long for an {protocol} address"
            ));
        }
        // Past the end of the new-size block holding the current block's last address.
        let end = net.block(current.last(), len).last();
        let after = end.wrapping_add(1) & low_bits(net.bits);
        let next = net.block(after, len);
        if after == 0 || !net.contains(next.addr) {
            return Err(format!(
                "not enough remaining address space for a subnet with a prefix of {len} bits after {}",
                current.to_go_string()
            ));
        }
        out.push(Value::String(next.to_go_string()));
        current = next;
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::funcs::eval_expr as eval;

    fn ok(src: &str) -> Value {
        eval(src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn strings(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::from(*s)).collect())
    }

    #[test]
    fn cidr_functions_match_terraform_examples() {
        for (src, want) in [
            ("cidrhost(\"10.12.112.0/20\", 16)", "10.12.112.16"),
            ("cidrhost(\"10.12.112.0/20\", 268)", "10.12.113.12"),
            (
                "cidrhost(\"fd00:fd12:3456:7890:00a2::/72\", 34)",
                "fd00:fd12:3456:7890::22",
            ),
            ("cidrnetmask(\"172.16.0.0/12\")", "255.240.0.0"),
            ("cidrsubnet(\"172.16.0.0/12\", 4, 2)", "172.18.0.0/16"),
            ("cidrsubnet(\"10.1.2.0/24\", 4, 15)", "10.1.2.240/28"),
            (
                "cidrsubnet(\"fd00:fd12:3456:7890::/56\", 16, 162)",
                "fd00:fd12:3456:7800:a200::/72",
            ),
        ] {
            assert_eq!(ok(src), Value::from(want), "{src}");
        }
        assert_eq!(
            ok("cidrsubnets(\"10.1.0.0/16\", 4, 4, 8, 4)"),
            strings(&[
                "10.1.0.0/20",
                "10.1.16.0/20",
                "10.1.32.0/24",
                "10.1.48.0/20"
            ])
        );
        assert_eq!(
            ok("cidrsubnets(\"fd00:fd12:3456:7890::/56\", 16, 16, 16, 32)"),
            strings(&[
                "fd00:fd12:3456:7800::/72",
                "fd00:fd12:3456:7800:100::/72",
                "fd00:fd12:3456:7800:200::/72",
                "fd00:fd12:3456:7800:300::/88",
            ])
        );
    }

    #[test]
    fn cidr_functions_match_go_cty_funcs_tests() {
        for (src, want) in [
            ("cidrhost(\"192.168.1.0/24\", 5)", "192.168.1.5"),
            ("cidrhost(\"192.168.1.0/24\", -5)", "192.168.1.251"),
            ("cidrhost(\"192.168.1.0/24\", -256)", "192.168.1.0"),
            ("cidrhost(\"1.2.3.4/32\", 0)", "1.2.3.4"),
            (
                "cidrhost(\"::/0\", -1)",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            ("cidrnetmask(\"192.168.1.0/24\")", "255.255.255.0"),
            ("cidrnetmask(\"1.2.3.4/32\")", "255.255.255.255"),
            ("cidrnetmask(\"0.0.0.0/0\")", "0.0.0.0"),
            ("cidrnetmask(\"fd00::/56\")", "ffff:ffff:ffff:ff00::"),
            ("cidrsubnet(\"192.168.2.0/20\", 4, 6)", "192.168.6.0/24"),
            ("cidrsubnet(\"fe80::/48\", 16, 6)", "fe80:0:0:6::/64"),
            ("cidrsubnet(\"fe80::/48\", 0, 0)", "fe80::/48"),
            ("cidrsubnets(\"10.0.0.0/8\", \"8\")[0]", "10.0.0.0/16"),
        ] {
            assert_eq!(ok(src), Value::from(want), "{src}");
        }
        assert_eq!(ok("cidrsubnets(\"10.0.0.0/8\")"), Value::Array(Vec::new()));
        for (src, err) in [
            (
                "cidrhost(\"192.168.1.0/30\", 255)",
                "prefix of 30 does not accommodate a host numbered 255",
            ),
            (
                "cidrhost(\"192.168.1.0/30\", -255)",
                "prefix of 30 does not accommodate a host numbered -251",
            ),
            (
                "cidrhost(\"not-a-cidr\", 6)",
                "invalid CIDR expression: invalid CIDR address: not-a-cidr",
            ),
            ("cidrhost(\"10.256.0.0/8\", 6)", "invalid CIDR address"),
            ("cidrhost(\"10.0.0.0/33\", 6)", "invalid CIDR address"),
            ("cidrhost(\"010.0.0.0/8\", 6)", "invalid CIDR address"),
            ("cidrhost(\"10.0.0.0/8\", 1.5)", "whole number"),
            (
                "cidrsubnet(\"192.168.2.0/20\", 4, 16)",
                "prefix extension of 4 does not accommodate a subnet numbered 16",
            ),
            (
                "cidrsubnet(\"192.168.2.0/20\", 13, 0)",
                "insufficient address space to extend prefix of 20 by 13",
            ),
            (
                "cidrsubnet(\"fe80::/48\", 33, 0)",
                "may not extend prefix by more than 32 bits",
            ),
            (
                "cidrsubnets(\"10.0.0.0/30\", 1, 2, 1)",
                "not enough remaining address space for a subnet with a prefix of 31 bits after 10.0.0.2/32",
            ),
            (
                "cidrsubnets(\"10.0.0.0/8\", 0)",
                "must extend prefix by at least one bit",
            ),
            (
                "cidrsubnets(\"10.0.0.0/8\", 33)",
                "may not extend prefix by more than 32 bits",
            ),
            (
                "cidrsubnets(\"10.0.0.0/8\", 25)",
                "would extend prefix to 33 bits, which is too long for an IPv4 address",
            ),
        ] {
            let got = eval(src).expect_err(src);
            assert!(got.contains(err), "{src}: {got}");
        }
    }

    #[test]
    fn ipv4_mapped_prefixes_print_as_go_prints_them() {
        // go-cidr mixes 4- and 16-byte forms here (buildx returns odd addresses or
        // crashes); kiln computes in IPv6 and prints the way Go's `net` does.
        assert_eq!(
            ok("cidrhost(\"::ffff:10.0.0.0/120\", 5)"),
            Value::from("10.0.0.5")
        );
        assert_eq!(
            ok("cidrsubnet(\"::ffff:10.0.0.0/104\", 8, 3)"),
            Value::from("10.3.0.0/16")
        );
    }

    #[test]
    fn cidrsubnets_keeps_go_cidrs_wraparound_below_zero() {
        // go-cidr looks for the first subnet after the block just below the prefix;
        // below address zero that block wraps to the top, and go-cidr reports a
        // rollover.
        let got = eval("cidrsubnets(\"0.0.0.0/0\", 8)").expect_err("rollover");
        assert!(got.contains("after 255.0.0.0/8"), "{got}");
    }
}
