//! The load generator's hot path writes and reads DNS messages by hand: building a hickory
//! `Message` per query costs several allocations, and all a load run needs from an answer is
//! its id, rcode and TC bit.

use hickory_resolver::proto::{
    rr::Name,
    serialize::binary::{BinEncodable, BinEncoder},
};

pub(crate) const HEADER_LEN: usize = 12;
const FLAG_QR: u8 = 0x80;
const FLAG_TC: u8 = 0x02;
const FLAG_RD: u8 = 0x01;
const TYPE_OPT: u16 = 41;
/// Longest wire-format name (RFC 1035 2.3.4).
pub(crate) const MAX_NAME_WIRE_LEN: usize = 255;
/// A random label: its length byte plus this many characters.
pub(crate) const RANDOM_LABEL_LEN: usize = 10;

/// `name` in uncompressed wire form, as an absolute name.
pub(crate) fn name_wire(name: &Name) -> Vec<u8> {
    let mut fqdn = name.clone();
    fqdn.set_fqdn(true);
    let mut bytes = Vec::with_capacity(fqdn.len() + 2);
    let mut encoder = BinEncoder::new(&mut bytes);
    fqdn.emit(&mut encoder)
        .expect("a parsed name always encodes into a growable buffer");
    bytes
}

/// Appends the header (everything before the question's name).
pub(crate) fn begin_query(buf: &mut Vec<u8>, id: u16, edns: bool) {
    buf.extend_from_slice(&id.to_be_bytes());
    // One question, recursion desired (as stub resolvers and dnsperf send it).
    buf.extend_from_slice(&[FLAG_RD, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
}

/// Appends a random label (`[a-z0-9]{10}`) drawn from `random` bits.
pub(crate) fn push_random_label(buf: &mut Vec<u8>, mut random: u64) {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    buf.push(RANDOM_LABEL_LEN as u8);
    for _ in 0..RANDOM_LABEL_LEN {
        // 36^10 < 2^64: ten base-36 digits of one u64 are close enough to uniform.
        buf.push(ALPHABET[(random % 36) as usize]);
        random /= 36;
    }
}

/// Appends the question's type and class and, if asked, an OPT record advertising `payload`.
pub(crate) fn end_query(buf: &mut Vec<u8>, qtype: u16, qclass: u16, edns_payload: Option<u16>) {
    buf.extend_from_slice(&qtype.to_be_bytes());
    buf.extend_from_slice(&qclass.to_be_bytes());
    if let Some(payload) = edns_payload {
        buf.push(0); // root owner name
        buf.extend_from_slice(&TYPE_OPT.to_be_bytes());
        buf.extend_from_slice(&payload.to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // ext rcode, version, flags, rdlength
    }
}

/// What a load run needs from an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AnswerHead {
    pub id: u16,
    /// The full rcode: the header's 4 bits plus the OPT record's 8 extended bits.
    pub rcode: u16,
    pub truncated: bool,
}

/// Reads the id and rcode of a response; `None` if it is not a well-formed response.
pub(crate) fn read_answer_head(msg: &[u8]) -> Option<AnswerHead> {
    if msg.len() < HEADER_LEN || msg[2] & FLAG_QR == 0 {
        return None;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
    let mut head = AnswerHead {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        rcode: u16::from(msg[3] & 0x0f),
        truncated: msg[2] & FLAG_TC != 0,
    };
    let (questions, records, additionals) = (count(4), count(6) + count(8), count(10));
    if additionals == 0 {
        return Some(head);
    }
    // Extended rcodes live in the OPT record, so walk to the additional section.
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    for _ in 0..records {
        at = skip_record(msg, at)?;
    }
    for _ in 0..additionals {
        let fixed = skip_name(msg, at)?;
        let end = skip_record(msg, at)?;
        if u16::from_be_bytes([msg[fixed], msg[fixed + 1]]) == TYPE_OPT {
            head.rcode |= u16::from(msg[fixed + 4]) << 4;
        }
        at = end;
    }
    Some(head)
}

fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + usize::from(len),
            0xc0 => return Some(at + 2), // a compression pointer ends the name
            _ => return None,
        }
    }
}

fn skip_record(msg: &[u8], at: usize) -> Option<usize> {
    let fixed = skip_name(msg, at)?;
    let rdlength = u16::from_be_bytes([*msg.get(fixed + 8)?, *msg.get(fixed + 9)?]);
    let end = fixed + 10 + usize::from(rdlength);
    (end <= msg.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_resolver::proto::{
        op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
        rr::{DNSClass, RData, Record, RecordType, rdata},
    };

    use super::*;

    fn our_query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut buf = Vec::new();
        begin_query(&mut buf, 0xbeef, edns.is_some());
        buf.extend_from_slice(&name_wire(&Name::from_str(name).unwrap()));
        end_query(&mut buf, u16::from(qtype), u16::from(DNSClass::IN), edns);
        buf
    }

    #[test]
    fn hand_built_query_decodes_as_hickory_sees_it() {
        let decoded = Message::from_vec(&our_query(
            "demo1.example.org",
            RecordType::AAAA,
            Some(1232),
        ))
        .unwrap();
        assert_eq!(decoded.id, 0xbeef);
        assert_eq!(decoded.message_type, MessageType::Query);
        assert!(decoded.recursion_desired);
        assert_eq!(decoded.queries.len(), 1);
        assert_eq!(
            decoded.queries[0].name(),
            &Name::from_str("demo1.example.org.").unwrap()
        );
        assert_eq!(decoded.queries[0].query_type(), RecordType::AAAA);
        assert_eq!(decoded.queries[0].query_class(), DNSClass::IN);
        assert_eq!(decoded.edns.as_ref().unwrap().max_payload(), 1232);

        let plain = Message::from_vec(&our_query("x.", RecordType::A, None)).unwrap();
        assert!(plain.edns.is_none());
    }

    #[test]
    fn random_labels_are_valid_hostname_labels() {
        let mut buf = Vec::new();
        push_random_label(&mut buf, u64::MAX);
        push_random_label(&mut buf, 0);
        buf.extend_from_slice(&name_wire(&Name::from_str("example.org").unwrap()));
        let mut message = vec![0u8; 12];
        message[5] = 1;
        message.extend_from_slice(&buf);
        message.extend_from_slice(&[0, 1, 0, 1]);
        let decoded = Message::from_vec(&message).unwrap();
        let name = decoded.queries[0].name().to_ascii();
        let labels: Vec<&str> = name.split('.').collect();
        assert_eq!(labels[1], "aaaaaaaaaa", "{name}");
        assert_eq!(&labels[2..], ["example", "org", ""]);
        assert_eq!(labels[0].len(), 10);
        assert!(
            labels[0]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }

    fn response(rcode: ResponseCode, with_opt: bool, truncated: bool) -> Vec<u8> {
        let mut message = Message::new(7, MessageType::Response, OpCode::Query);
        message.metadata.response_code = rcode;
        message.metadata.truncation = truncated;
        message.add_query(Query::query(
            Name::from_str("demo1.example.org.").unwrap(),
            RecordType::A,
        ));
        let name = Name::from_str("demo1.example.org.").unwrap();
        message.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::A(rdata::A::new(127, 0, 0, 1)),
        ));
        message.add_additional(Record::from_rdata(
            Name::from_str("_udp.demo1.example.org.").unwrap(),
            0,
            RData::SRV(rdata::SRV::new(0, 0, 5353, Name::root())),
        ));
        if with_opt {
            message.set_edns(Edns::new());
        }
        message.to_vec().unwrap()
    }

    #[test]
    fn reads_ids_rcodes_and_truncation() {
        for (rcode, with_opt, truncated) in [
            (ResponseCode::NoError, false, false),
            (ResponseCode::NXDomain, true, false),
            (ResponseCode::ServFail, true, true),
            (ResponseCode::BADCOOKIE, true, false),
            (ResponseCode::BADVERS, true, false),
        ] {
            let head = read_answer_head(&response(rcode, with_opt, truncated)).unwrap();
            assert_eq!(head.id, 7);
            assert_eq!(head.rcode, u16::from(rcode), "{rcode:?}");
            assert_eq!(head.truncated, truncated);
        }
    }

    #[test]
    fn rejects_queries_and_garbage() {
        assert_eq!(
            read_answer_head(&our_query("a.b", RecordType::A, None)),
            None
        );
        assert_eq!(read_answer_head(&[0x80; 5]), None);
        let mut cut = response(ResponseCode::NoError, true, false);
        cut.truncate(cut.len() - 4);
        assert_eq!(read_answer_head(&cut), None);
    }
}
