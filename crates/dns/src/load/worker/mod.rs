//! One task per UDP socket or TCP connection, each with many queries in flight keyed by id.
//! Pacing comes from a shared semaphore: the pacer adds a permit per query due, a worker takes
//! one per query it sends, and closing the semaphore ends the sending.

use std::{
    collections::BTreeMap,
    io::{self, ErrorKind},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use hickory_resolver::proto::rr::{DNSClass, RecordType};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use tokio::{
    net::UdpSocket,
    sync::{Semaphore, TryAcquireError},
};

use super::{LoadConfig, LoadReport, NamePattern, mix::Picker};
use crate::{Rcode, wire};

mod tcp;
pub(crate) use tcp::{connect_tcp, run_tcp};

/// The run's choices, compiled to wire bytes once.
pub(crate) struct Plan {
    names: Vec<CompiledName>,
    name_picker: Option<Picker>,
    nxdomain_share: f64,
    nx_zone_wire: Vec<u8>,
    types: Vec<RecordType>,
    type_picker: Picker,
    edns_payload: Option<u16>,
    timeout: Duration,
    /// How often to look for timed-out queries.
    expiry_tick: Duration,
    server: SocketAddr,
}

struct CompiledName {
    wire: Vec<u8>,
    random_label: bool,
}

impl Plan {
    /// From a validated config.
    pub(crate) fn new(config: &LoadConfig) -> Plan {
        let names = config
            .names
            .entries()
            .iter()
            .map(|(pattern, _)| match pattern {
                NamePattern::Exact(name) => CompiledName {
                    wire: wire::name_wire(name),
                    random_label: false,
                },
                NamePattern::RandomSubdomain(zone) => CompiledName {
                    wire: wire::name_wire(zone),
                    random_label: true,
                },
            })
            .collect();
        Plan {
            names,
            name_picker: Picker::new(config.names.entries().iter().map(|(_, w)| *w)),
            nxdomain_share: config.nxdomain_share,
            nx_zone_wire: wire::name_wire(&config.nx_zone),
            types: config.types.entries().iter().map(|(t, _)| *t).collect(),
            type_picker: Picker::new(config.types.entries().iter().map(|(_, w)| *w))
                .expect("validated: a type with weight > 0"),
            edns_payload: config.edns_payload,
            timeout: config.timeout,
            expiry_tick: (config.timeout / 4)
                .clamp(Duration::from_millis(1), Duration::from_millis(100)),
            server: config.server,
        }
    }
}

/// State all workers and the pacer share.
pub(crate) struct Shared {
    permits: Semaphore,
    taken: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            permits: Semaphore::new(0),
            taken: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    /// Adds up to `count` permits (the semaphore holds at most `MAX_PERMITS`); returns how many.
    pub(crate) fn add_permits(&self, count: u64) -> u64 {
        let room = Semaphore::MAX_PERMITS - self.permits.available_permits();
        let added = usize::try_from(count).unwrap_or(usize::MAX).min(room);
        self.permits.add_permits(added);
        added as u64
    }

    /// Permits workers have turned into queries (sent, or failed to send).
    pub(crate) fn permits_taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    pub(crate) fn close(&self) {
        self.permits.close();
    }

    fn record_error(&self, what: &str, error: &io::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| format!("{what}: {error}"));
    }

    pub(crate) fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Ends the sending when the run's future is dropped half-way.
pub(crate) struct CloseOnDrop(pub(crate) Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

const LATENCY_CEILING_US: u64 = 3_600_000_000;

/// One worker's tallies, merged into the report at the end.
pub(crate) struct WorkerStats {
    sent: u64,
    /// Indexed by the full 12-bit rcode; grown on demand.
    answers: Vec<u64>,
    timeouts: u64,
    lost: u64,
    errors: u64,
    truncated: u64,
    unexpected: u64,
    sent_by_type: Vec<u64>,
    sent_nxdomain_names: u64,
    latency_us: Histogram<u64>,
}

impl WorkerStats {
    pub(crate) fn new(plan: &Plan) -> WorkerStats {
        WorkerStats {
            sent: 0,
            answers: vec![0; 16],
            timeouts: 0,
            lost: 0,
            errors: 0,
            truncated: 0,
            unexpected: 0,
            sent_by_type: vec![0; plan.types.len()],
            sent_nxdomain_names: 0,
            // Fixed bounds: an auto-resizing histogram would clamp `saturating_record` at its
            // current top instead of growing. An hour is beyond any time-out worth setting.
            latency_us: Histogram::new_with_bounds(1, LATENCY_CEILING_US, 3)
                .expect("valid histogram bounds"),
        }
    }

    pub(crate) fn merge(&mut self, other: WorkerStats) {
        self.sent += other.sent;
        if self.answers.len() < other.answers.len() {
            self.answers.resize(other.answers.len(), 0);
        }
        for (total, count) in self.answers.iter_mut().zip(other.answers) {
            *total += count;
        }
        self.timeouts += other.timeouts;
        self.lost += other.lost;
        self.errors += other.errors;
        self.truncated += other.truncated;
        self.unexpected += other.unexpected;
        for (total, count) in self.sent_by_type.iter_mut().zip(other.sent_by_type) {
            *total += count;
        }
        self.sent_nxdomain_names += other.sent_nxdomain_names;
        self.latency_us
            .add(&other.latency_us)
            .expect("auto-resizing histograms always add");
    }

    pub(crate) fn into_report(
        self,
        plan: &Plan,
        sending_time: Duration,
        elapsed: Duration,
        sent_per_second: Vec<u64>,
        shared: &Shared,
    ) -> LoadReport {
        let answers = self
            .answers
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(rcode, count)| (Rcode(rcode as u16), *count))
            .collect();
        let mut sent_by_type = BTreeMap::new();
        for (rtype, count) in plan.types.iter().zip(&self.sent_by_type) {
            if *count > 0 {
                *sent_by_type.entry(*rtype).or_insert(0) += count;
            }
        }
        LoadReport {
            sent: self.sent,
            answers,
            timeouts: self.timeouts,
            lost: self.lost,
            errors: self.errors,
            first_error: shared.first_error(),
            truncated: self.truncated,
            unexpected: self.unexpected,
            sent_by_type,
            sent_nxdomain_names: self.sent_nxdomain_names,
            sent_per_second,
            sending_time,
            elapsed,
            latency_us: self.latency_us,
        }
    }
}

#[derive(Clone, Copy)]
struct Slot {
    sent_at: Instant,
    id: u16,
    live: bool,
}

/// Queries in flight on one connection, in a ring indexed by the low bits of their id.
/// Ids advance by one per query; an id whose slot is still busy is skipped, so the ids in
/// flight are always distinct.
struct InFlight {
    slots: Vec<Slot>,
    mask: usize,
    next_id: u16,
    count: usize,
}

impl InFlight {
    fn new(window: usize, first_id: u16) -> InFlight {
        let size = (window * 2).next_power_of_two().clamp(16, 1 << 16);
        let empty = Slot {
            sent_at: Instant::now(),
            id: 0,
            live: false,
        };
        InFlight {
            slots: vec![empty; size],
            mask: size - 1,
            next_id: first_id,
            count: 0,
        }
    }

    /// An id that is not in flight. The ring is at least twice the window, so this ends.
    fn free_id(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.slots[usize::from(id) & self.mask].live {
                return id;
            }
        }
    }

    fn insert(&mut self, id: u16, sent_at: Instant) {
        self.slots[usize::from(id) & self.mask] = Slot {
            sent_at,
            id,
            live: true,
        };
        self.count += 1;
    }

    fn take(&mut self, id: u16) -> Option<Slot> {
        let slot = &mut self.slots[usize::from(id) & self.mask];
        if slot.live && slot.id == id {
            slot.live = false;
            self.count -= 1;
            Some(*slot)
        } else {
            None
        }
    }

    /// Frees the queries sent before `cutoff`; returns how many.
    fn expire(&mut self, cutoff: Instant) -> u64 {
        let mut expired = 0;
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.live && s.sent_at < cutoff)
        {
            slot.live = false;
            expired += 1;
        }
        self.count -= expired as usize;
        expired
    }

    fn clear(&mut self) -> u64 {
        self.expire(Instant::now() + Duration::from_secs(3600))
    }
}

/// What every worker does, whatever the transport.
struct Worker {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    window: usize,
    in_flight: InFlight,
    rng: SmallRng,
    /// The next query (after two bytes for TCP's length prefix when framed).
    query: Vec<u8>,
    stats: WorkerStats,
    sending_closed: bool,
}

/// The query a worker built, to account for once it is sent.
struct Built {
    id: u16,
    type_index: u16,
    nxdomain_name: bool,
}

impl Worker {
    fn new(plan: Arc<Plan>, shared: Arc<Shared>, window: usize, seed: Option<u64>) -> Worker {
        let mut rng = match seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        let first_id = rng.random();
        Worker {
            stats: WorkerStats::new(&plan),
            plan,
            shared,
            window,
            in_flight: InFlight::new(window, first_id),
            rng,
            query: Vec::with_capacity(512),
            sending_closed: false,
        }
    }

    /// Takes a permit without waiting, if there is room (counting `queued` queries not yet
    /// written) and sending is still open.
    fn try_permit(&mut self, queued: usize) -> bool {
        if !self.wants_permit(queued) {
            return false;
        }
        match self.shared.permits.try_acquire() {
            Ok(permit) => {
                self.took(permit);
                true
            }
            Err(TryAcquireError::NoPermits) => false,
            Err(TryAcquireError::Closed) => {
                self.sending_closed = true;
                false
            }
        }
    }

    /// Converts a permit into a query to send; the pacer ends a count-bounded run once every
    /// permit has been converted, so that none is lost when it closes the semaphore.
    fn took(&self, permit: tokio::sync::SemaphorePermit<'_>) {
        permit.forget();
        self.shared.taken.fetch_add(1, Ordering::Relaxed);
    }

    fn wants_permit(&self, queued: usize) -> bool {
        !self.sending_closed && self.in_flight.count + queued < self.window
    }

    fn finished(&self) -> bool {
        self.sending_closed && self.in_flight.count == 0
    }

    /// Writes the next query into `self.query`, after `prefix` placeholder bytes.
    fn build(&mut self, prefix: usize) -> Built {
        let plan = &*self.plan;
        let id = self.in_flight.free_id();
        let type_index = plan.type_picker.pick(self.rng.random());
        let nxdomain_name = match &plan.name_picker {
            None => true,
            Some(_) if plan.nxdomain_share >= 1.0 => true,
            Some(_) => plan.nxdomain_share > 0.0 && self.rng.random::<f64>() < plan.nxdomain_share,
        };
        let query = &mut self.query;
        query.clear();
        query.resize(prefix, 0);
        wire::begin_query(query, id, plan.edns_payload.is_some());
        if nxdomain_name {
            wire::push_random_label(query, self.rng.random());
            query.extend_from_slice(&plan.nx_zone_wire);
        } else {
            let picker = plan.name_picker.as_ref().expect("checked above");
            let name = &plan.names[picker.pick(self.rng.random())];
            if name.random_label {
                wire::push_random_label(query, self.rng.random());
            }
            query.extend_from_slice(&name.wire);
        }
        wire::end_query(
            query,
            u16::from(plan.types[type_index]),
            u16::from(DNSClass::IN),
            plan.edns_payload,
        );
        Built {
            id,
            type_index: type_index as u16,
            nxdomain_name,
        }
    }

    fn sent(&mut self, built: Built, at: Instant) {
        self.in_flight.insert(built.id, at);
        self.stats.sent += 1;
        self.stats.sent_by_type[usize::from(built.type_index)] += 1;
        self.stats.sent_nxdomain_names += u64::from(built.nxdomain_name);
        self.shared.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&mut self, what: &str, error: &io::Error) {
        self.stats.errors += 1;
        self.shared.record_error(what, error);
    }

    fn answer(&mut self, message: &[u8], at: Instant) {
        let Some(head) = wire::read_answer_head(message) else {
            self.stats.unexpected += 1;
            return;
        };
        let Some(slot) = self.in_flight.take(head.id) else {
            self.stats.unexpected += 1;
            return;
        };
        let rcode = usize::from(head.rcode);
        if rcode >= self.stats.answers.len() {
            self.stats.answers.resize(rcode + 1, 0);
        }
        self.stats.answers[rcode] += 1;
        self.stats.truncated += u64::from(head.truncated);
        let micros = at.saturating_duration_since(slot.sent_at).as_micros();
        self.stats
            .latency_us
            .saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
        self.shared.answered.fetch_add(1, Ordering::Relaxed);
    }

    fn expire(&mut self) {
        let Some(cutoff) = Instant::now().checked_sub(self.plan.timeout) else {
            return;
        };
        let expired = self.in_flight.expire(cutoff);
        self.stats.timeouts += expired;
        self.shared.timeouts.fetch_add(expired, Ordering::Relaxed);
    }

    /// The connection died: whatever was in flight on it will never be answered.
    fn lose_in_flight(&mut self) {
        let lost = self.in_flight.clear();
        self.stats.lost += lost;
        // Counted with time-outs for progress: both are sent queries that got no answer.
        self.shared.timeouts.fetch_add(lost, Ordering::Relaxed);
    }

    fn expiry_ticker(&self) -> tokio::time::Interval {
        let mut ticker = tokio::time::interval(self.plan.expiry_tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    }
}

pub(crate) async fn run_udp(
    socket: UdpSocket,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    window: usize,
    seed: Option<u64>,
) -> WorkerStats {
    let mut worker = Worker::new(plan, shared.clone(), window, seed);
    let mut ticker = worker.expiry_ticker();
    // An answer can be as large as the payload we advertise; a bigger one is cut, which is
    // fine: only the header and the OPT record are read, and a cut OPT just counts as unexpected.
    let mut answer = vec![0u8; 65_535];
    loop {
        while worker.try_permit(0) {
            send_udp(&mut worker, &socket).await;
        }
        if worker.finished() {
            break;
        }
        let wants_permit = worker.wants_permit(0);
        tokio::select! {
            biased;
            received = socket.recv(&mut answer) => {
                match received {
                    Ok(len) => worker.answer(&answer[..len], Instant::now()),
                    Err(e) => worker.error("receiving", &e),
                }
                // Read whatever else is queued before yielding to the scheduler again.
                loop {
                    match socket.try_recv(&mut answer) {
                        Ok(len) => worker.answer(&answer[..len], Instant::now()),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            worker.error("receiving", &e);
                            break;
                        }
                    }
                }
            }
            permit = shared.permits.acquire(), if wants_permit => match permit {
                Ok(permit) => {
                    worker.took(permit);
                    send_udp(&mut worker, &socket).await;
                }
                Err(_) => worker.sending_closed = true,
            },
            _ = ticker.tick() => worker.expire(),
        }
    }
    worker.stats
}

async fn send_udp(worker: &mut Worker, socket: &UdpSocket) {
    let built = worker.build(0);
    let at = Instant::now();
    match socket.send(&worker.query).await {
        Ok(_) => worker.sent(built, at),
        Err(e) => worker.error("sending", &e),
    }
}

#[cfg(test)]
mod tests;
