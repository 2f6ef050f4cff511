//! Prints an [`Answer`] the way BIND's dig 9.18 does, so that people and scripts that read dig
//! output can read ours.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};
use hickory_resolver::proto::{
    op::{Edns, OpCode},
    rr::{DNSClass, RData, Record, RecordType},
};

use crate::query::Answer;

// BIND's default master-file style as dig uses it: fields start at these columns, tabs are 8 wide.
const TTL_COLUMN: usize = 24;
const CLASS_COLUMN: usize = 32;
const TYPE_COLUMN: usize = 40;
const RDATA_COLUMN: usize = 48;
const TAB: usize = 8;

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.message;
        writeln!(f)?;
        writeln!(
            f,
            "; <<>> promlearn-dns {} <<>> {}",
            env!("CARGO_PKG_VERSION"),
            self.query
        )?;
        if self.retried_over_tcp {
            writeln!(f, ";; Truncated, retrying in TCP mode.")?;
        }
        writeln!(f, ";; Got answer:")?;
        writeln!(
            f,
            ";; ->>HEADER<<- opcode: {}, status: {}, id: {}",
            opcode_name(m.op_code),
            self.rcode(),
            m.id
        )?;
        write!(f, ";; flags:")?;
        for flag in self.flags() {
            write!(f, " {flag}")?;
        }
        writeln!(
            f,
            "; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
            self.counts.query, self.counts.answer, self.counts.authority, self.counts.additional
        )?;
        if m.op_code == OpCode::Query && m.recursion_desired && !m.recursion_available {
            writeln!(f, ";; WARNING: recursion requested but not available")?;
        }
        writeln!(f)?;

        if let Some(edns) = &m.edns {
            write_opt(f, edns)?;
        }
        if !m.queries.is_empty() {
            writeln!(f, ";; QUESTION SECTION:")?;
            for question in &m.queries {
                let mut line = String::from(";");
                let mut column = 0;
                push_field(&mut line, &mut column, None, &question.name().to_string());
                push_field(
                    &mut line,
                    &mut column,
                    Some(CLASS_COLUMN),
                    &class_name(question.query_class()),
                );
                push_field(
                    &mut line,
                    &mut column,
                    Some(TYPE_COLUMN),
                    &type_name(question.query_type()),
                );
                writeln!(f, "{line}")?;
            }
            writeln!(f)?;
        }
        for (title, records) in [
            ("ANSWER", &m.answers),
            ("AUTHORITY", &m.authorities),
            ("ADDITIONAL", &m.additionals),
        ] {
            if records.is_empty() {
                continue;
            }
            writeln!(f, ";; {title} SECTION:")?;
            for record in records {
                writeln!(f, "{}", record_line(record))?;
            }
            writeln!(f)?;
        }

        writeln!(f, ";; Query time: {} msec", self.query_time.as_millis())?;
        let ip = self.query.server.ip();
        writeln!(
            f,
            ";; SERVER: {ip}#{}({ip}) ({})",
            self.query.server.port(),
            self.transport
        )?;
        let when: DateTime<Utc> = self.received_at.into();
        writeln!(f, ";; WHEN: {}", when.format("%a %b %d %H:%M:%S UTC %Y"))?;
        writeln!(f, ";; MSG SIZE  rcvd: {}", self.size)?;
        writeln!(f)
    }
}

fn opcode_name(op_code: OpCode) -> String {
    match u8::from(op_code) {
        0 => "QUERY".into(),
        1 => "IQUERY".into(),
        2 => "STATUS".into(),
        4 => "NOTIFY".into(),
        5 => "UPDATE".into(),
        other => format!("RESERVED{other}"),
    }
}

fn class_name(class: DNSClass) -> String {
    match class {
        DNSClass::IN => "IN".into(),
        DNSClass::CH => "CH".into(),
        DNSClass::HS => "HS".into(),
        DNSClass::NONE => "NONE".into(),
        DNSClass::ANY => "ANY".into(),
        other => format!("CLASS{}", u16::from(other)),
    }
}

fn type_name(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

fn write_opt(f: &mut fmt::Formatter<'_>, edns: &Edns) -> fmt::Result {
    writeln!(f, ";; OPT PSEUDOSECTION:")?;
    let dnssec_ok = if edns.flags().dnssec_ok { " do" } else { "" };
    writeln!(
        f,
        "; EDNS: version: {}, flags:{dnssec_ok}; udp: {}",
        edns.version(),
        edns.max_payload()
    )?;
    for (code, option) in &edns.options().options {
        let data = Vec::<u8>::try_from(option).unwrap_or_default();
        match u16::from(*code) {
            3 => writeln!(f, "; NSID: {} (\"{}\")", hex(&data), printable(&data))?,
            10 => writeln!(f, "; COOKIE: {}", hex(&data))?,
            other => writeln!(
                f,
                "; OPT={other}: {} (\"{}\")",
                hex(&data),
                printable(&data)
            )?,
        }
    }
    Ok(())
}

fn hex(data: &[u8]) -> String {
    data.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

fn printable(data: &[u8]) -> String {
    data.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// One record as dig prints it: `name TTL class type rdata`, tab-aligned.
pub(crate) fn record_line(record: &Record) -> String {
    let mut line = String::new();
    let mut column = 0;
    push_field(&mut line, &mut column, None, &record.name.to_string());
    push_field(
        &mut line,
        &mut column,
        Some(TTL_COLUMN),
        &record.ttl.to_string(),
    );
    push_field(
        &mut line,
        &mut column,
        Some(CLASS_COLUMN),
        &class_name(record.dns_class),
    );
    push_field(
        &mut line,
        &mut column,
        Some(TYPE_COLUMN),
        &type_name(record.record_type()),
    );
    push_field(
        &mut line,
        &mut column,
        Some(RDATA_COLUMN),
        &rdata_text(&record.data),
    );
    line
}

/// Appends `text` starting at `to`, padded as BIND's masterdump `indent()` does: tabs to the
/// last tab stop before `to`, then spaces, and always at least one separator.
fn push_field(line: &mut String, column: &mut usize, to: Option<usize>, text: &str) {
    if let Some(to) = to {
        let to = to.max(*column + 1);
        let tabs = to / TAB - *column / TAB;
        if tabs > 0 {
            line.extend(std::iter::repeat_n('\t', tabs));
            *column = to / TAB * TAB;
        }
        line.extend(std::iter::repeat_n(' ', to - *column));
        *column = to;
    }
    line.push_str(text);
    *column += text.chars().count();
}

/// Record data in presentation format, where hickory's `Display` differs from dig's.
fn rdata_text(data: &RData) -> String {
    match data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|string| quoted(string))
            .collect::<Vec<_>>()
            .join(" "),
        RData::Update0(_) => String::new(),
        other => other.to_string(),
    }
}

/// A character-string as a zone file quotes it: `"`, `\` escaped, non-printables as `\DDD`.
fn quoted(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + 2);
    text.push('"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                text.push('\\');
                text.push(byte as char);
            }
            b' '..=b'~' => text.push(byte as char),
            _ => {
                let _ = write!(text, "\\{byte:03}");
            }
        }
    }
    text.push('"');
    text
}

#[cfg(test)]
mod tests {
    use std::{
        str::FromStr,
        time::{Duration, SystemTime},
    };

    use hickory_resolver::proto::{
        op::{Edns, Message, MessageType, OpCode, Query as Question, ResponseCode},
        rr::{
            Name, RData, Record, RecordType,
            rdata::{self, opt::EdnsOption},
        },
        serialize::binary::{BinEncodable, BinEncoder, NameEncoding},
    };

    use super::*;
    use crate::{Query, Rcode, Transport};

    const SERVER: &str = "127.0.0.1:19053";

    /// What CoreDNS's whoami answered to `dig @127.0.0.1 -p 19053 demo1.example.org`.
    fn whoami_answer(id: u16, srv_port: u16) -> Vec<u8> {
        let name = Name::from_str("demo1.example.org.").unwrap();
        let mut message = Message::new(id, MessageType::Response, OpCode::Query);
        message.metadata.authoritative = true;
        message.metadata.recursion_desired = true;
        message.add_query(Question::query(name.clone(), RecordType::A));
        message.add_additional(Record::from_rdata(
            name,
            0,
            RData::A(rdata::A::new(127, 0, 0, 1)),
        ));
        message.add_additional(Record::from_rdata(
            Name::from_str("_udp.demo1.example.org.").unwrap(),
            0,
            RData::SRV(rdata::SRV::new(0, 0, srv_port, Name::root())),
        ));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        message.set_edns(edns);
        uncompressed(&message)
    }

    /// CoreDNS's whoami does not compress names; hickory does unless asked for canonical form.
    fn uncompressed(message: &Message) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        message.emit(&mut encoder).unwrap();
        bytes
    }

    fn received_at() -> SystemTime {
        // Wed Nov 25 11:07:27 UTC 2026
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_604_847)
    }

    #[test]
    fn prints_whoami_exactly_as_dig_9_18_did() {
        let query = Query::new(SERVER.parse().unwrap(), "demo1.example.org").unwrap();
        let bytes = whoami_answer(44432, 44014);
        let answer =
            Answer::from_wire(query, &bytes, Duration::from_millis(4), received_at()).unwrap();
        // Recorded from Debian's dig 9.18.49 against CoreDNS 1.15.0 (its banner lines aside).
        let dig = "
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 44432
;; flags: qr aa rd; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 3
;; WARNING: recursion requested but not available

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; QUESTION SECTION:
;demo1.example.org.\t\tIN\tA

;; ADDITIONAL SECTION:
demo1.example.org.\t0\tIN\tA\t127.0.0.1
_udp.demo1.example.org.\t0\tIN\tSRV\t0 0 44014 .

;; Query time: 4 msec
;; SERVER: 127.0.0.1#19053(127.0.0.1) (UDP)
;; WHEN: Wed Nov 25 11:07:27 UTC 2026
;; MSG SIZE  rcvd: 120

";
        let printed = answer.to_string();
        let (banner, body) = printed.split_at(printed.find(";; Got answer:").unwrap());
        assert_eq!(
            banner,
            "\n; <<>> promlearn-dns 0.1.0 <<>> @127.0.0.1 -p 19053 demo1.example.org. A\n"
        );
        assert_eq!(format!("\n{body}"), dig);
        assert_eq!(answer.rcode(), Rcode::NOERROR);
        assert_eq!(answer.id(), 44432);
        assert_eq!(answer.flags(), ["qr", "aa", "rd"]);
        assert_eq!(answer.size, 120);
    }

    #[test]
    fn columns_follow_binds_indent_rules() {
        // Lines printed by dig 9.18.49 for whoami answers: short names get tabs, long names
        // push the later fields right and are separated by single spaces.
        let a = |name: &str| {
            Record::from_rdata(
                Name::from_str(name).unwrap(),
                0,
                RData::A(rdata::A::new(127, 0, 0, 1)),
            )
        };
        let srv = |name: &str, port: u16| {
            Record::from_rdata(
                Name::from_str(name).unwrap(),
                0,
                RData::SRV(rdata::SRV::new(0, 0, port, Name::root())),
            )
        };
        for (record, dig) in [
            (a("x.org."), "x.org.\t\t\t0\tIN\tA\t127.0.0.1"),
            (
                srv("_udp.x.org.", 33801),
                "_udp.x.org.\t\t0\tIN\tSRV\t0 0 33801 .",
            ),
            (
                a("rather-long-name.example.org."),
                "rather-long-name.example.org. 0\tIN\tA\t127.0.0.1",
            ),
            (
                a("a-rather-long-name.example.org."),
                "a-rather-long-name.example.org.\t0 IN\tA\t127.0.0.1",
            ),
            (
                srv("_udp.a-rather-long-name.example.org.", 49073),
                "_udp.a-rather-long-name.example.org. 0 IN SRV\t0 0 49073 .",
            ),
            (
                a("ab-rather-long-name.example.org."),
                "ab-rather-long-name.example.org. 0 IN\tA\t127.0.0.1",
            ),
            (
                srv("_udp.ab-rather-long-name.example.org.", 37199),
                "_udp.ab-rather-long-name.example.org. 0\tIN SRV\t0 0 37199 .",
            ),
            (
                a("abcdefghij-rather-long-name.example.org."),
                "abcdefghij-rather-long-name.example.org. 0 IN A\t127.0.0.1",
            ),
            (
                srv("_udp.abcdefghij-rather-long-name.example.org.", 51165),
                "_udp.abcdefghij-rather-long-name.example.org. 0\tIN SRV 0 0 51165 .",
            ),
        ] {
            assert_eq!(record_line(&record), dig);
        }
    }

    #[test]
    fn prints_every_section_extended_rcodes_and_options() {
        let name = Name::from_str("example.org.").unwrap();
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.metadata.response_code = ResponseCode::BADCOOKIE;
        message.metadata.recursion_desired = true;
        message.metadata.recursion_available = true;
        message.metadata.authentic_data = true;
        message.metadata.truncation = true;
        message.add_query(Question::query(name.clone(), RecordType::TXT));
        message.add_answer(Record::from_rdata(
            name.clone(),
            300,
            RData::TXT(rdata::TXT::new(vec![
                "v=spf1 -all".into(),
                "say \"hi\"".into(),
            ])),
        ));
        message.add_authority(Record::from_rdata(
            name.clone(),
            3600,
            RData::NS(rdata::NS(Name::from_str("ns1.example.org.").unwrap())),
        ));
        let mut edns = Edns::new();
        edns.set_max_payload(4096).set_dnssec_ok(true);
        edns.options_mut().insert(EdnsOption::Unknown(
            10,
            vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3],
        ));
        edns.options_mut()
            .insert(EdnsOption::Unknown(65001, b"hi!".to_vec()));
        message.set_edns(edns);
        let bytes = message.to_vec().unwrap();
        let query = Query::new(SERVER.parse().unwrap(), "example.org")
            .unwrap()
            .with_type(RecordType::TXT)
            .with_transport(Transport::Tcp);
        let answer =
            Answer::from_wire(query, &bytes, Duration::from_micros(1500), received_at()).unwrap();
        let printed = answer.to_string();
        for expected in [
            "; <<>> promlearn-dns 0.1.0 <<>> @127.0.0.1 -p 19053 example.org. TXT +tcp\n",
            ";; ->>HEADER<<- opcode: QUERY, status: BADCOOKIE, id: 1\n",
            ";; flags: qr tc rd ra ad; QUERY: 1, ANSWER: 1, AUTHORITY: 1, ADDITIONAL: 1\n\n",
            "; EDNS: version: 0, flags: do; udp: 4096\n; COOKIE: deadbeef00010203\n; OPT=65001: 686921 (\"hi!\")\n",
            ";; QUESTION SECTION:\n;example.org.\t\t\tIN\tTXT\n\n",
            ";; ANSWER SECTION:\nexample.org.\t\t300\tIN\tTXT\t\"v=spf1 -all\" \"say \\\"hi\\\"\"\n\n",
            ";; AUTHORITY SECTION:\nexample.org.\t\t3600\tIN\tNS\tns1.example.org.\n\n",
            ";; Query time: 1 msec\n;; SERVER: 127.0.0.1#19053(127.0.0.1) (TCP)\n",
        ] {
            assert!(
                printed.contains(expected),
                "missing {expected:?} in\n{printed}"
            );
        }
        assert!(!printed.contains("WARNING"));
        assert!(
            !printed.contains("ADDITIONAL SECTION"),
            "OPT alone is no section"
        );
        assert_eq!(answer.rcode(), Rcode(23));
    }

    #[test]
    fn refuses_garbage_and_queries() {
        let query = Query::new(SERVER.parse().unwrap(), "x").unwrap();
        let err = Answer::from_wire(query.clone(), &[1, 2, 3], Duration::ZERO, received_at())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed answer from 127.0.0.1:19053: 3 bytes is shorter than a header"
        );
        let asked = query.to_message(9).to_vec().unwrap();
        let err = Answer::from_wire(query, &asked, Duration::ZERO, received_at()).unwrap_err();
        assert!(err.to_string().contains("a query, not an answer"), "{err}");
    }
}
