//! What a load run did: queries sent and answered, per rcode and type, and latency quantiles.

use std::{collections::BTreeMap, fmt, time::Duration};

use hdrhistogram::Histogram;
use hickory_resolver::proto::rr::RecordType;

use crate::Rcode;

/// A snapshot while a load runs, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProgress {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Queries sent so far.
    pub sent: u64,
    /// Answers received so far, whatever their rcode.
    pub answered: u64,
    /// Queries so far that got no answer within the time-out.
    pub timeouts: u64,
    /// Send or receive failures so far (see [`LoadReport::errors`]).
    pub errors: u64,
    /// The rate the profile asks for right now, in queries per second.
    pub target_qps: f64,
    /// The run's query bound ([`LoadConfig::max_queries`](crate::LoadConfig::max_queries)).
    pub max_queries: u64,
    /// The run's sending-time bound ([`LoadConfig::max_duration`](crate::LoadConfig::max_duration)).
    pub max_duration: Duration,
    /// Sending is over; the answers still due are being awaited.
    pub finished_sending: bool,
}

/// Latency percentiles of answered queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Half the answers came at least this fast (median); zero when nothing was answered.
    pub p50: Duration,
    /// 90% of the answers came at least this fast.
    pub p90: Duration,
    /// 99% of the answers came at least this fast.
    pub p99: Duration,
    /// The slowest answer.
    pub max: Duration,
    /// The average over answered queries.
    pub mean: Duration,
}

/// What a load run did. Every sent query ends as exactly one answer (counted by rcode) or one
/// time-out, so `sent == answered() + timeouts + lost`.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Queries handed to the kernel: what the server's request counter should rise by.
    pub sent: u64,
    /// Answers by response code, as the server sent them.
    pub answers: BTreeMap<Rcode, u64>,
    /// Sent queries not answered within the time-out.
    pub timeouts: u64,
    /// Sent queries whose TCP connection closed before their answer came.
    pub lost: u64,
    /// Failures to send or receive (refused by the kernel or the network, a connection that
    /// would not open). Queries that could not be sent are not in `sent`.
    pub errors: u64,
    /// The first of `errors`, to show.
    pub first_error: Option<String>,
    /// Answers with the TC bit set (also counted in `answers`).
    pub truncated: u64,
    /// Datagrams that answered nothing in flight: late answers after a time-out, or strays.
    pub unexpected: u64,
    /// Queries sent, by record type (CoreDNS's `type` label).
    pub sent_by_type: BTreeMap<RecordType, u64>,
    /// How many of `sent` asked for names that cannot exist.
    pub sent_nxdomain_names: u64,
    /// Sent queries per second of the run; the last entry may cover less than a second.
    pub sent_per_second: Vec<u64>,
    /// From the start until sending stopped.
    pub sending_time: Duration,
    /// From the start until the last answer or time-out.
    pub elapsed: Duration,
    /// Microseconds from sending a query to reading its answer, answered queries only.
    pub latency_us: Histogram<u64>,
}

impl LoadReport {
    /// Answers received, all rcodes together (not time-outs, not lost queries).
    pub fn answered(&self) -> u64 {
        self.answers.values().sum()
    }

    /// Answers received with this rcode; 0 when there were none.
    pub fn answers_with(&self, rcode: Rcode) -> u64 {
        self.answers.get(&rcode).copied().unwrap_or(0)
    }

    /// Answers per second over the whole run (as dnsperf reports "Queries per second").
    pub fn qps(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.answered() as f64 / seconds
        } else {
            0.0
        }
    }

    /// Latency percentiles of the answered queries (microsecond resolution); all zero when
    /// nothing was answered.
    pub fn latency(&self) -> Latency {
        let h = &self.latency_us;
        if h.is_empty() {
            return Latency::default();
        }
        let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
        Latency {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: Duration::from_micros(h.max()),
            mean: Duration::from_secs_f64(h.mean() / 1e6),
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let answered = self.answered();
        let share = |n: u64| {
            if self.sent == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.sent as f64
            }
        };
        writeln!(f, "Queries sent:       {}", self.sent)?;
        write!(
            f,
            "Queries answered:   {answered} ({:.2}%)",
            share(answered)
        )?;
        for (rcode, count) in &self.answers {
            write!(f, "  {rcode} {count}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Queries timed out:  {} ({:.2}%)",
            self.timeouts,
            share(self.timeouts)
        )?;
        if self.lost > 0 {
            writeln!(f, "Queries lost:       {} (connection closed)", self.lost)?;
        }
        write!(f, "Errors:             {}", self.errors)?;
        if let Some(first) = &self.first_error {
            write!(f, " (first: {first})")?;
        }
        writeln!(f)?;
        write!(f, "Types sent:        ")?;
        for (rtype, count) in &self.sent_by_type {
            write!(f, " {rtype} {count}")?;
        }
        writeln!(f)?;
        if self.sent_nxdomain_names > 0 {
            writeln!(f, "NXDOMAIN names:     {}", self.sent_nxdomain_names)?;
        }
        if self.truncated > 0 || self.unexpected > 0 {
            writeln!(
                f,
                "Truncated answers:  {}, unexpected datagrams: {}",
                self.truncated, self.unexpected
            )?;
        }
        writeln!(
            f,
            "Run time:           {:.3} s (sending {:.3} s)",
            self.elapsed.as_secs_f64(),
            self.sending_time.as_secs_f64()
        )?;
        writeln!(f, "Answers per second: {:.1}", self.qps())?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let latency = self.latency();
        writeln!(
            f,
            "Latency:            p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            ms(latency.p50),
            ms(latency.p90),
            ms(latency.p99),
            ms(latency.max)
        )
    }
}
