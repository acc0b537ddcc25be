//! Certificates minted per test with chosen validity, so fixtures never
//! rot: the tests' presets over `certinel-testkit` (the repository's one
//! certificate factory), and the serial number as certinel must print it.

use certinel_testkit::{Purpose, Spec};

pub use certinel_testkit::{now, Minted, DAY};

/// What to put in a leaf certificate.
pub struct Leaf<'a> {
    pub cn: &'a str,
    pub sans: &'a [&'a str],
    pub not_before: i64,
    pub not_after: i64,
    pub client_auth_only: bool,
}

impl<'a> Leaf<'a> {
    /// A server certificate for `localhost` and 127.0.0.1, valid from a
    /// day ago for `days_left` days.
    pub fn server(cn: &'a str, days_left: i64) -> Leaf<'a> {
        Leaf {
            cn,
            sans: &["localhost", "127.0.0.1"],
            not_before: now() - DAY,
            not_after: now() + days_left * DAY,
            client_auth_only: false,
        }
    }
}

/// A test certificate authority: `O=certinel tests`, valid from ten days
/// ago for ten years.
pub struct Ca {
    pub cert: Minted,
    signer: certinel_testkit::Ca,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let signer = certinel_testkit::Ca::root(&Spec {
            o: Some("certinel tests"),
            ..Spec::new(cn, now() - 10 * DAY, now() + 3650 * DAY, Purpose::Ca)
        })
        .unwrap();
        Ca {
            cert: signer.cert.clone(),
            signer,
        }
    }

    /// An intermediate CA this one signs, valid from ten days ago for
    /// `days_left` more days.
    pub fn intermediate(&self, cn: &str, days_left: i64) -> Ca {
        let signer = self
            .signer
            .intermediate(&Spec {
                o: Some("certinel tests"),
                ..Spec::new(cn, now() - 10 * DAY, now() + days_left * DAY, Purpose::Ca)
            })
            .unwrap();
        Ca {
            cert: signer.cert.clone(),
            signer,
        }
    }

    /// Issues a leaf signed by this CA: a TLS server and client certificate,
    /// or a client one only.
    pub fn issue(&self, leaf: &Leaf<'_>) -> Minted {
        let purpose = if leaf.client_auth_only {
            Purpose::Client
        } else {
            Purpose::ServerAndClient
        };
        self.signer
            .issue(&Spec {
                sans: leaf.sans,
                ..Spec::new(leaf.cn, leaf.not_before, leaf.not_after, purpose)
            })
            .unwrap()
    }
}

/// A server leaf `ca` issues, valid for `days_left` more days.
pub fn leaf(ca: &Ca, cn: &str, days_left: i64) -> Minted {
    ca.issue(&Leaf::server(cn, days_left))
}

/// A server certificate valid for `days_left` more days and its renewal,
/// valid for `renewed_days_left`, as cert-manager issues them: the renewal
/// starts later (NotBefore 20 days and an hour ago), so a server still
/// presenting the first is restart pending once its file holds the second.
pub fn renewal(ca: &Ca, cn: &str, days_left: i64, renewed_days_left: i64) -> (Minted, Minted) {
    let first = ca.issue(&Leaf {
        not_before: now() - 20 * DAY,
        ..Leaf::server(cn, days_left)
    });
    let renewed = ca.issue(&Leaf {
        not_before: now() - 3600,
        ..Leaf::server(cn, renewed_days_left)
    });
    (first, renewed)
}

/// A self-signed certificate for `localhost` (no CA), valid from a day ago
/// until `not_after`.
pub fn self_signed(cn: &str, not_after: i64) -> Minted {
    certinel_testkit::self_signed(&Spec {
        sans: &["localhost"],
        ..Spec::new(cn, now() - DAY, not_after, Purpose::Any)
    })
    .unwrap()
}

/// A self-signed certificate whose serial number is `serial` (big-endian
/// bytes, as DER carries them).
pub fn with_serial(cn: &str, serial: &[u8]) -> Minted {
    certinel_testkit::self_signed(&Spec {
        sans: &[cn],
        serial: Some(serial),
        ..Spec::new(cn, now() - DAY, now() + DAY, Purpose::Any)
    })
    .unwrap()
}

/// The serial number of a DER certificate as certinel prints it, like
/// x509-certificate-exporter: the serialNumber INTEGER's bytes read as an
/// unsigned big-endian number, in decimal. Read from the DER by hand
/// (Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?,
/// serialNumber INTEGER … } … }), independently of the code under test.
pub fn serial_decimal(der: &[u8]) -> String {
    fn header(b: &[u8]) -> (u8, usize, usize) {
        let tag = b[0];
        let first = b[1] as usize;
        if first < 0x80 {
            return (tag, 2, first);
        }
        let n = first & 0x7f;
        let len = b[2..2 + n]
            .iter()
            .fold(0usize, |a, x| (a << 8) | *x as usize);
        (tag, 2 + n, len)
    }
    let (_, h, _) = header(der); // Certificate
    let tbs = &der[h..];
    let (_, h, _) = header(tbs); // TBSCertificate
    let mut rest = &tbs[h..];
    let (tag, h, len) = header(rest);
    if tag == 0xa0 {
        rest = &rest[h + len..]; // skip [0] version
    }
    let (tag, h, len) = header(rest);
    assert_eq!(tag, 0x02, "serialNumber is an INTEGER");
    decimal_of_be_bytes(&rest[h..h + len])
}

/// Unsigned big-endian bytes → decimal digits (schoolbook, any length).
pub fn decimal_of_be_bytes(bytes: &[u8]) -> String {
    let mut digits: Vec<u32> = vec![0]; // little-endian base 10
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            let v = *d * 256 + carry;
            *d = v % 10;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push(carry % 10);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits
        .iter()
        .rev()
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect()
}
