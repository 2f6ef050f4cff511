//! Synthetic series for the detector tests: a seeded RNG, rhythms with noise, and request rates
//! computed the way Prometheus computes `rate(counter[3s])` from jittery 1 s scrapes.

#![allow(dead_code)]

pub const T0: i64 = 1_790_000_000_000;
pub const STEP: i64 = 1000;

/// SplitMix64: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// Poisson with mean `lambda` (Knuth's method for small means, normal beyond).
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let l = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
}

pub fn timestamps(n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| T0 + i * STEP).collect()
}

/// `base + amp·sin(2πi/period) + N(0, noise)`.
pub fn rhythm(n: usize, base: f64, amp: f64, period: f64, noise: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            base + amp * (std::f64::consts::TAU * i as f64 / period).sin() + noise * rng.normal()
        })
        .collect()
}

/// Multiplies `values[from..to]` by `factor`.
pub fn inject(values: &mut [f64], from: usize, to: usize, factor: f64) {
    for v in &mut values[from..to] {
        *v *= factor;
    }
}

/// `rate(counter[3s])` at 1 s steps of a counter fed by Poisson requests at `qps(second)`,
/// scraped every second with ±100 ms of jitter: the jittery series a calm DNS server gives.
pub fn prometheus_rate(n: usize, seed: u64, qps: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    // Requests per 100 ms bucket.
    let buckets = (n + 4) * 10;
    let mut counter = Vec::with_capacity(buckets + 1);
    let mut total = 0u64;
    counter.push(0u64);
    for b in 0..buckets {
        total += rng.poisson(qps(b as f64 / 10.0) * 0.1);
        counter.push(total);
    }
    // Scrapes at about every second.
    let scrapes: Vec<(f64, f64)> = (0..n + 4)
        .map(|s| {
            let t = s as f64 + (rng.uniform() - 0.5) * 0.2;
            let t = t.max(0.0);
            let b = ((t * 10.0).floor() as usize).min(buckets);
            (t, counter[b] as f64)
        })
        .collect();
    (0..n)
        .map(|i| {
            let end = i as f64 + 3.0;
            let inside: Vec<&(f64, f64)> = scrapes
                .iter()
                .filter(|(t, _)| *t > end - 3.0 && *t <= end)
                .collect();
            match (inside.first(), inside.last()) {
                (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0),
                _ => f64::NAN,
            }
        })
        .collect()
}
