//! DNS response codes, printed as dig and CoreDNS's metrics name them.

use std::fmt;

/// A DNS response code, including EDNS's extended codes (12 bits).
///
/// It prints as dig and CoreDNS's `rcode` metric label do (`NOERROR`, `NXDOMAIN`, ...), so a
/// load report can be compared with `sum by (rcode) (coredns_dns_responses_total)` directly.
///
/// ```
/// use promlearn_dns::Rcode;
/// assert_eq!(Rcode::NXDOMAIN.to_string(), "NXDOMAIN");
/// assert_eq!(Rcode::from(3u16), Rcode::NXDOMAIN);
/// assert_eq!(Rcode::from(3841u16).to_string(), "RCODE3841");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rcode(pub u16);

impl Rcode {
    /// 0: the query succeeded (the answer may still be empty: NODATA).
    pub const NOERROR: Rcode = Rcode(0);
    /// 1: the server could not parse the query.
    pub const FORMERR: Rcode = Rcode(1);
    /// 2: the server failed to answer (an upstream or zone problem on its side).
    pub const SERVFAIL: Rcode = Rcode(2);
    /// 3: the name does not exist.
    pub const NXDOMAIN: Rcode = Rcode(3);
    /// 4: the server does not implement this kind of query.
    pub const NOTIMP: Rcode = Rcode(4);
    /// 5: the server refuses to answer (policy, or a zone it does not serve).
    pub const REFUSED: Rcode = Rcode(5);

    /// The mnemonic, or `None` for a code without one.
    pub fn name(self) -> Option<&'static str> {
        // The same table as miekg/dns's RcodeToString, which CoreDNS uses for its metric labels.
        Some(match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            16 => "BADSIG",
            17 => "BADKEY",
            18 => "BADTIME",
            19 => "BADMODE",
            20 => "BADNAME",
            21 => "BADALG",
            22 => "BADTRUNC",
            23 => "BADCOOKIE",
            _ => return None,
        })
    }
}

impl From<u16> for Rcode {
    fn from(code: u16) -> Rcode {
        Rcode(code)
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}
