//! Basic auth against bcrypt hashes, and what keeps wrong passwords from starving a right one.
//!
//! A bcrypt check costs tens of milliseconds by design (90 to 250 ms at the usual cost on a
//! busy 2-core machine), and checks run one at a time on the blocking pool, so that a flood of
//! wrong passwords costs one core, never the runtime's threads. Without a bound, a correct
//! login that is not remembered yet (Prometheus's first scrape after a restart) waited behind
//! every wrong one queued before it, past its scrape timeout. So:
//!
//! - a success is remembered for [`AUTH_CACHE_TTL`](super::AUTH_CACHE_TTL) and a failure for
//!   [`FAILURE_TTL`], each keyed by a keyed hash of the user, password and stored hash (as
//!   exporter-toolkit caches successes): the same credentials are checked once;
//! - a check of credentials not remembered needs a place: at most [`PER_CLIENT`] per client
//!   address, and [`LANE_PLACES`] for all clients whose last check failed within
//!   [`FAILURE_TTL`] (suspects) and as many for the others. Without a place the request gets
//!   `429 Too Many Requests` with `Retry-After: 1` at once, never waits;
//! - so a correct credential from a client that sent no wrong one waits behind at most
//!   `2 * LANE_PLACES - 1` checks: about half a second, well inside a scrape timeout. A client
//!   that shares its address with the one sending wrong passwords shares its limit.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use hyper::header::HeaderValue;
use ring::hmac;

use super::{AUTH_CACHE_TTL, basic_credentials};

/// The most remembered successes; the oldest goes first.
const AUTH_CACHE_SIZE: usize = 64;
/// How long a failed check is remembered: the same wrong credentials are refused without a
/// bcrypt check, and its client counts as a suspect.
pub(crate) const FAILURE_TTL: Duration = Duration::from_secs(60);
/// The most remembered failures and suspect clients (beyond them, the oldest go).
const FAILURE_CACHE_SIZE: usize = 4096;
/// Checks of unremembered credentials one client address may have waiting or running.
pub(crate) const PER_CLIENT: usize = 1;
/// Checks waiting or running in each lane (suspects, others).
pub(crate) const LANE_PLACES: usize = 2;

/// What a request's credentials are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Right: serve it.
    Good,
    /// Missing or wrong: 401.
    Wrong,
    /// Not checked: too many checks wait; 429.
    Busy,
}

/// Who holds places for checks now.
#[derive(Default)]
struct Places {
    per_client: HashMap<IpAddr, usize>,
    /// Checks held in the suspects' lane and in the others'.
    lanes: [usize; 2],
    /// Clients whose last check failed, and when.
    suspects: HashMap<IpAddr, Instant>,
}

/// A place for one check; given back when dropped.
struct Place<'a> {
    places: &'a Mutex<Places>,
    client: IpAddr,
    lane: usize,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        places.lanes[self.lane] -= 1;
        if let Some(n) = places.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                places.per_client.remove(&self.client);
            }
        }
    }
}

/// Basic auth against bcrypt hashes, with checks remembered and bounded.
pub(super) struct Authenticator {
    pub(super) users: BTreeMap<String, String>,
    /// Checked for an unknown user, so that a wrong name costs as long as a wrong password and
    /// timing does not tell which names exist.
    pub(super) decoy: String,
    /// A random key for the caches' hashes: no password is kept, nor a plain digest of one.
    pub(super) key: hmac::Key,
    pub(super) successes: Mutex<Vec<([u8; 32], Instant)>>,
    pub(super) failures: Mutex<HashMap<[u8; 32], Instant>>,
    places: Mutex<Places>,
    /// One bcrypt check at a time.
    pub(super) gate: tokio::sync::Semaphore,
}

impl Authenticator {
    pub(super) fn new(users: &BTreeMap<String, String>) -> Option<Authenticator> {
        let decoy = users.values().next()?.clone();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .expect("the system's random source works");
        Some(Authenticator {
            users: users.clone(),
            decoy,
            key,
            successes: Mutex::new(Vec::new()),
            failures: Mutex::new(HashMap::new()),
            places: Mutex::new(Places::default()),
            gate: tokio::sync::Semaphore::new(1),
        })
    }

    /// Checks the `Authorization` header of a request from `client`.
    pub(super) async fn check(&self, header: Option<&HeaderValue>, client: IpAddr) -> Verdict {
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return Verdict::Wrong;
        };
        let known = self.users.get(&user);
        let hash = known.unwrap_or(&self.decoy).clone();
        let tag = self.tag(&user, &password, &hash);
        if let Some(verdict) = self.remembered(&tag, known.is_some()) {
            return verdict;
        }
        let Some(_place) = self.place(client) else {
            return Verdict::Busy;
        };
        let Ok(_permit) = self.gate.acquire().await else {
            return Verdict::Wrong;
        };
        // The same credentials may have been checked while this request waited.
        if let Some(verdict) = self.remembered(&tag, known.is_some()) {
            return verdict;
        }
        let verified = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if verified && known.is_some() {
            let mut successes = self.successes.lock().unwrap_or_else(|e| e.into_inner());
            successes.retain(|(_, at)| at.elapsed() < AUTH_CACHE_TTL);
            if successes.len() >= AUTH_CACHE_SIZE {
                successes.remove(0);
            }
            successes.push((tag, Instant::now()));
            Verdict::Good
        } else {
            let now = Instant::now();
            remember(
                &mut self.failures.lock().unwrap_or_else(|e| e.into_inner()),
                tag,
                now,
            );
            let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
            remember(&mut places.suspects, client, now);
            Verdict::Wrong
        }
    }

    /// The keyed hash of a user, password and stored hash.
    fn tag(&self, user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.key);
        for part in [user.as_bytes(), password.as_bytes(), hash.as_bytes()] {
            // Lengths first, so that no two splits of the same bytes collide.
            context.update(&(part.len() as u64).to_le_bytes());
            context.update(part);
        }
        let mut tag = [0u8; 32];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    /// What a check of these credentials gave, if it is remembered. A plain comparison is
    /// enough: the tags are outputs of a keyed function the client cannot compute, so how
    /// long a comparison takes tells it nothing it could use.
    fn remembered(&self, tag: &[u8; 32], known_user: bool) -> Option<Verdict> {
        let successes = self.successes.lock().unwrap_or_else(|e| e.into_inner());
        if known_user
            && successes
                .iter()
                .any(|(t, at)| t == tag && at.elapsed() < AUTH_CACHE_TTL)
        {
            return Some(Verdict::Good);
        }
        drop(successes);
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(tag)
            .is_some_and(|at| at.elapsed() < FAILURE_TTL)
            .then_some(Verdict::Wrong)
    }

    /// A place for a check from `client`, if its lane and its own limit have one.
    fn place(&self, client: IpAddr) -> Option<Place<'_>> {
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        let suspect = places
            .suspects
            .get(&client)
            .is_some_and(|at| at.elapsed() < FAILURE_TTL);
        let lane = usize::from(!suspect);
        let mine = places.per_client.get(&client).copied().unwrap_or(0);
        if mine >= PER_CLIENT || places.lanes[lane] >= LANE_PLACES {
            return None;
        }
        places.lanes[lane] += 1;
        *places.per_client.entry(client).or_default() += 1;
        Some(Place {
            places: &self.places,
            client,
            lane,
        })
    }
}

/// Remembers `key` at `now` in a map of bounded size: expired entries go first, then, if it
/// is still full, the oldest.
fn remember<K: std::hash::Hash + Eq + Copy>(map: &mut HashMap<K, Instant>, key: K, now: Instant) {
    if map.len() >= FAILURE_CACHE_SIZE {
        map.retain(|_, at| at.elapsed() < FAILURE_TTL);
    }
    if map.len() >= FAILURE_CACHE_SIZE
        && let Some(oldest) = map.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
    {
        map.remove(&oldest);
    }
    map.insert(key, now);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::Engine;

    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    /// Many wrong passwords at once from one client: a few are checked, the rest get 429 at
    /// once, and a right password from another client still gets its place; a failure is
    /// remembered, so the same wrong password again is refused without a check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_passwords_wait_in_a_bounded_queue_and_never_starve_a_right_one() {
        // Cost 8: ~20 ms a check, so that 200 of them one at a time would take seconds.
        let hash = bcrypt::hash("right", 8).unwrap();
        let auth = Arc::new(
            Authenticator::new(&BTreeMap::from([("prometheus".to_owned(), hash)])).unwrap(),
        );
        let attacker: IpAddr = "127.0.0.2".parse().unwrap();
        let prometheus: IpAddr = "127.0.0.1".parse().unwrap();
        let mut wrong = tokio::task::JoinSet::new();
        for i in 0..200 {
            let auth = auth.clone();
            wrong.spawn(async move {
                auth.check(Some(&header("prometheus", &format!("wrong-{i}"))), attacker)
                    .await
            });
        }
        let right = auth
            .check(Some(&header("prometheus", "right")), prometheus)
            .await;
        assert_eq!(
            right,
            Verdict::Good,
            "the right password from another client"
        );
        let mut verdicts = HashMap::<String, usize>::new();
        while let Some(verdict) = wrong.join_next().await {
            *verdicts
                .entry(format!("{:?}", verdict.unwrap()))
                .or_default() += 1;
        }
        assert_eq!(verdicts.get("Good"), None, "{verdicts:?}");
        // One check at a time per client: most of the 200 were never checked.
        let busy = verdicts.get("Busy").copied().unwrap_or(0);
        assert!(busy >= 100, "{verdicts:?}");
        let failures = auth.failures.lock().unwrap().len();
        assert_eq!(failures, 200 - busy, "each checked one is remembered");
        let tag = |password: &str| auth.tag("prometheus", password, &auth.decoy);
        let checked = (0..200)
            .map(|i| format!("wrong-{i}"))
            .find(|p| auth.remembered(&tag(p), true).is_some())
            .expect("a checked wrong password");
        assert_eq!(
            auth.check(Some(&header("prometheus", &checked)), attacker)
                .await,
            Verdict::Wrong,
            "a remembered failure needs no place"
        );
        assert_eq!(auth.failures.lock().unwrap().len(), failures);
    }
}
