//! One query, as `dig` sends it, with the whole answer kept for printing.

use std::{
    fmt,
    io::ErrorKind,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
    time::{Duration, Instant, SystemTime},
};

use hickory_resolver::proto::{
    op::{Edns, Message, MessageType, OpCode, Query as Question},
    rr::{
        DNSClass, Name, RecordType,
        rdata::opt::{EdnsCode, EdnsOption},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

use crate::{DnsError, Rcode};

/// How queries travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Transport {
    /// One datagram each way; a truncated answer is asked again over TCP, as dig does.
    #[default]
    Udp,
    /// Length-prefixed messages over a TCP connection (dig `+tcp`).
    Tcp,
}

impl Transport {
    /// `"UDP"` or `"TCP"`, as errors and reports print it; parsing takes either case.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = DnsError;

    fn from_str(text: &str) -> Result<Transport, DnsError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            other => Err(DnsError::BadConfig(format!(
                "unknown transport `{other}`: use udp or tcp"
            ))),
        }
    }
}

/// Parses a name as dig does: relative names are taken as absolute (`demo1.example.org` means
/// `demo1.example.org.`).
pub fn parse_name(text: &str) -> Result<Name, DnsError> {
    let bad = |reason: String| DnsError::BadName {
        name: text.to_owned(),
        reason,
    };
    if text.trim().is_empty() {
        return Err(bad("the name is empty (use `.` for the root)".into()));
    }
    let mut name = Name::from_ascii(text.trim()).map_err(|e| bad(e.to_string()))?;
    name.set_fqdn(true);
    // hickory accepts some names that do not fit on the wire; catch them here, not at send time.
    let wire_len = crate::wire::name_wire(&name).len();
    if wire_len > crate::wire::MAX_NAME_WIRE_LEN {
        return Err(bad(format!(
            "{wire_len} bytes on the wire, more than the 255 DNS allows"
        )));
    }
    Ok(name)
}

/// Parses a record type: `A`, `aaaa`, `TYPE65280`.
pub fn parse_record_type(text: &str) -> Result<RecordType, DnsError> {
    let upper = text.trim().to_ascii_uppercase();
    if let Some(number) = upper.strip_prefix("TYPE")
        && let Ok(code) = number.parse::<u16>()
    {
        return Ok(RecordType::from(code));
    }
    match RecordType::from_str(&upper) {
        Ok(rtype) if !matches!(rtype, RecordType::Unknown(_)) => Ok(rtype),
        _ => Err(DnsError::BadRecordType(text.to_owned())),
    }
}

/// Parses a class: `IN`, `CH`, `HS`.
pub fn parse_class(text: &str) -> Result<DNSClass, DnsError> {
    DNSClass::from_str(&text.trim().to_ascii_uppercase())
        .map_err(|_| DnsError::BadClass(text.to_owned()))
}

/// One DNS query with dig's defaults: class IN, type A, UDP, recursion desired, the AD bit,
/// EDNS with a 1232-byte UDP payload and a client cookie, a 5 s time-out.
///
/// ```
/// use promlearn_dns::{Query, Transport, proto::rr::RecordType};
///
/// let query = Query::new("127.0.0.1:9053".parse().unwrap(), "demo1.example.org")?
///     .with_type(RecordType::AAAA)
///     .with_transport(Transport::Tcp);
/// assert_eq!(query.name.to_string(), "demo1.example.org.");
/// assert_eq!(query.to_string(), "@127.0.0.1 -p 9053 demo1.example.org. AAAA +tcp");
///
/// // Names that cannot exist are refused before anything is sent.
/// let too_long = format!("{}.example.org", "a".repeat(64));
/// assert!(Query::new("127.0.0.1:9053".parse().unwrap(), &too_long).is_err());
/// # Ok::<(), promlearn_dns::DnsError>(())
/// ```
/// Sending it needs a server: `let answer = query.send().await?; println!("{answer}");`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The DNS server's address and port (dig's `@server -p port`).
    pub server: SocketAddr,
    /// The name asked for, always fully qualified (ends in `.`).
    pub name: Name,
    /// The record type asked for (default A).
    pub record_type: RecordType,
    /// The class asked for (default IN).
    pub class: DNSClass,
    /// UDP (default) or TCP.
    pub transport: Transport,
    /// How long to wait for an answer (default 5 s); a retry over TCP after a truncated UDP
    /// answer waits as long again.
    pub timeout: Duration,
    /// The UDP payload size to advertise in an OPT record; `None` sends no OPT (dig `+noedns`).
    pub edns_payload: Option<u16>,
    /// Sets the RD bit, asking the server to recurse (default `true`; dig `+norecurse` clears it).
    pub recursion_desired: bool,
    /// dig sets AD in queries to ask whether the answer was validated (`+adflag`).
    pub authentic_data: bool,
    /// Send an 8-byte client cookie (RFC 7873), as dig does by default with EDNS.
    pub cookie: bool,
}

/// dig's default advertised payload (BIND 9.16 and later; DNS flag day 2020).
pub const DEFAULT_EDNS_PAYLOAD: u16 = 1232;

impl Query {
    /// A query for `name` (type A, class IN) to `server`, with dig's defaults.
    pub fn new(server: SocketAddr, name: &str) -> Result<Query, DnsError> {
        Ok(Query {
            server,
            name: parse_name(name)?,
            record_type: RecordType::A,
            class: DNSClass::IN,
            transport: Transport::Udp,
            timeout: Duration::from_secs(5),
            edns_payload: Some(DEFAULT_EDNS_PAYLOAD),
            recursion_desired: true,
            authentic_data: true,
            cookie: true,
        })
    }

    /// Asks for `record_type` instead of A.
    pub fn with_type(mut self, record_type: RecordType) -> Query {
        self.record_type = record_type;
        self
    }

    /// Asks in `class` instead of IN (e.g. CH for `version.bind`).
    pub fn with_class(mut self, class: DNSClass) -> Query {
        self.class = class;
        self
    }

    /// Sends over `transport` instead of UDP.
    pub fn with_transport(mut self, transport: Transport) -> Query {
        self.transport = transport;
        self
    }

    /// Waits at most `timeout` for an answer instead of 5 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Query {
        self.timeout = timeout;
        self
    }

    /// `None` sends no OPT record at all (and so no cookie).
    pub fn with_edns(mut self, payload: Option<u16>) -> Query {
        self.edns_payload = payload;
        self
    }

    /// The message this query sends, with the given id.
    pub fn to_message(&self, id: u16) -> Message {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = self.recursion_desired;
        message.metadata.authentic_data = self.authentic_data;
        let mut question = Question::query(self.name.clone(), self.record_type);
        question.set_query_class(self.class);
        message.add_query(question);
        if let Some(payload) = self.edns_payload {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            if self.cookie {
                let client_cookie = rand::random::<[u8; 8]>().to_vec();
                edns.options_mut()
                    .insert(EdnsOption::Unknown(EdnsCode::Cookie.into(), client_cookie));
            }
            message.set_edns(edns);
        }
        message
    }

    /// Sends the query and waits for its answer. A truncated UDP answer is asked again over
    /// TCP, as dig does.
    pub async fn send(&self) -> Result<Answer, DnsError> {
        let id = rand::random::<u16>();
        let wire = self
            .to_message(id)
            .to_vec()
            .map_err(|e| DnsError::BadName {
                name: self.name.to_string(),
                reason: format!("cannot encode the query: {e}"),
            })?;
        let (bytes, query_time, transport) = match self.transport {
            Transport::Udp => {
                let (bytes, took) = self.exchange_udp(id, &wire).await?;
                (bytes, took, Transport::Udp)
            }
            Transport::Tcp => {
                let (bytes, took) = self.exchange_tcp(id, &wire).await?;
                (bytes, took, Transport::Tcp)
            }
        };
        let mut answer = Answer::from_wire(self.clone(), &bytes, query_time, SystemTime::now())?;
        answer.transport = transport;
        if transport == Transport::Udp && answer.message.truncation {
            let (bytes, took) = self.exchange_tcp(id, &wire).await?;
            answer = Answer::from_wire(self.clone(), &bytes, took, SystemTime::now())?;
            answer.transport = Transport::Tcp;
            answer.retried_over_tcp = true;
        }
        Ok(answer)
    }

    fn unreachable(&self, transport: Transport) -> impl FnOnce(std::io::Error) -> DnsError {
        let server = self.server;
        move |source| match source.kind() {
            ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => DnsError::Unreachable {
                server,
                transport: transport.as_str(),
                source,
            },
            _ => DnsError::Io {
                context: format!("talking {transport} to {server}"),
                source,
            },
        }
    }

    fn timed_out(&self, transport: Transport) -> DnsError {
        DnsError::Timeout {
            server: self.server,
            transport: transport.as_str(),
            timeout: self.timeout,
        }
    }

    async fn exchange_udp(&self, id: u16, wire: &[u8]) -> Result<(Vec<u8>, Duration), DnsError> {
        let socket = UdpSocket::bind(unspecified_for(self.server))
            .await
            .map_err(DnsError::io("binding a UDP socket"))?;
        // Connecting lets the kernel drop datagrams from anyone else and report ICMP refusals.
        socket
            .connect(self.server)
            .await
            .map_err(self.unreachable(Transport::Udp))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let started = Instant::now();
        socket
            .send(wire)
            .await
            .map_err(self.unreachable(Transport::Udp))?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
            let len = match received {
                Err(_) => return Err(self.timed_out(Transport::Udp)),
                Ok(result) => result.map_err(self.unreachable(Transport::Udp))?,
            };
            // Stray datagrams (a late answer to someone else) are skipped, as dig does.
            if len >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return Ok((buf[..len].to_vec(), started.elapsed()));
            }
        }
    }

    async fn exchange_tcp(&self, id: u16, wire: &[u8]) -> Result<(Vec<u8>, Duration), DnsError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let exchange = async {
            let mut stream = TcpStream::connect(self.server)
                .await
                .map_err(self.unreachable(Transport::Tcp))?;
            stream.set_nodelay(true).ok();
            let started = Instant::now();
            let mut framed = Vec::with_capacity(wire.len() + 2);
            framed.extend_from_slice(&(wire.len() as u16).to_be_bytes());
            framed.extend_from_slice(wire);
            stream
                .write_all(&framed)
                .await
                .map_err(self.unreachable(Transport::Tcp))?;
            loop {
                let len = stream
                    .read_u16()
                    .await
                    .map_err(self.unreachable(Transport::Tcp))?;
                let mut bytes = vec![0u8; usize::from(len)];
                stream
                    .read_exact(&mut bytes)
                    .await
                    .map_err(self.unreachable(Transport::Tcp))?;
                if len >= 2 && u16::from_be_bytes([bytes[0], bytes[1]]) == id {
                    return Ok((bytes, started.elapsed()));
                }
            }
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| Err(self.timed_out(Transport::Tcp)))
    }
}

pub(crate) fn unspecified_for(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

impl fmt::Display for Query {
    /// The query as dig's command line would say it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "@{} -p {} {}",
            self.server.ip(),
            self.server.port(),
            self.name
        )?;
        if self.class != DNSClass::IN {
            write!(f, " {}", self.class)?;
        }
        write!(f, " {}", self.record_type)?;
        if self.transport == Transport::Tcp {
            f.write_str(" +tcp")?;
        }
        match self.edns_payload {
            None => f.write_str(" +noedns")?,
            Some(DEFAULT_EDNS_PAYLOAD) => {}
            Some(payload) => write!(f, " +bufsize={payload}")?,
        }
        Ok(())
    }
}

/// The counts in a message's header. `additional` includes the OPT pseudo-record, as dig shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SectionCounts {
    /// Questions (QDCOUNT), normally 1.
    pub query: u16,
    /// Records in the answer section (ANCOUNT).
    pub answer: u16,
    /// Records in the authority section (NSCOUNT), e.g. the SOA of an NXDOMAIN.
    pub authority: u16,
    /// Records in the additional section (ARCOUNT), OPT included.
    pub additional: u16,
}

/// A server's answer to a [`Query`], whole: it prints as dig prints it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The query this answers.
    pub query: Query,
    /// The decoded answer, as hickory reads it.
    pub message: Message,
    /// The section counts from the answer's header, as received.
    pub counts: SectionCounts,
    /// From sending the query to receiving the answer.
    pub query_time: Duration,
    /// Wall-clock time the answer arrived (dig's `WHEN`).
    pub received_at: SystemTime,
    /// The answer's size in bytes, without TCP's length prefix.
    pub size: usize,
    /// The transport the answer came over.
    pub transport: Transport,
    /// The UDP answer was truncated, so the query went again over TCP.
    pub retried_over_tcp: bool,
}

impl Answer {
    /// Decodes an answer received for `query`.
    pub fn from_wire(
        query: Query,
        bytes: &[u8],
        query_time: Duration,
        received_at: SystemTime,
    ) -> Result<Answer, DnsError> {
        let malformed = |reason: String| DnsError::Malformed {
            server: query.server,
            reason,
        };
        if bytes.len() < crate::wire::HEADER_LEN {
            return Err(malformed(format!(
                "{} bytes is shorter than a header",
                bytes.len()
            )));
        }
        let count = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let counts = SectionCounts {
            query: count(4),
            answer: count(6),
            authority: count(8),
            additional: count(10),
        };
        let message = Message::from_vec(bytes).map_err(|e| malformed(e.to_string()))?;
        if message.message_type != MessageType::Response {
            return Err(malformed(
                "the QR bit is clear: a query, not an answer".into(),
            ));
        }
        Ok(Answer {
            transport: query.transport,
            query,
            message,
            counts,
            query_time,
            received_at,
            size: bytes.len(),
            retried_over_tcp: false,
        })
    }

    /// The full response code, extended bits from EDNS included.
    pub fn rcode(&self) -> Rcode {
        Rcode(u16::from(self.message.response_code))
    }

    /// The message id, the same as the query's.
    pub fn id(&self) -> u16 {
        self.message.id
    }

    /// The header flags that are set, in dig's order and spelling (`qr aa tc rd ra ad cd`).
    pub fn flags(&self) -> Vec<&'static str> {
        let m = &self.message.metadata;
        [
            (m.message_type == MessageType::Response, "qr"),
            (m.authoritative, "aa"),
            (m.truncation, "tc"),
            (m.recursion_desired, "rd"),
            (m.recursion_available, "ra"),
            (m.authentic_data, "ad"),
            (m.checking_disabled, "cd"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect()
    }
}
