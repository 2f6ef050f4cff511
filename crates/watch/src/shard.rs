//! Shards, the way Prometheus shards scraping with `hashmod`: `N` watches share one set of
//! queries, and shard `I` keeps the series whose label-set hash modulo `N` is `I`, so every
//! series has exactly one owner and no coordination is needed.
//!
//! The hash is FNV-1a (64-bit) over the series' labels as the query returns them (`__name__`
//! included), sorted by name, each written as its name's bytes, `0xff`, its value's bytes,
//! `0xff` (a byte UTF-8 never holds, so `a="bc"` and `ab="c"` differ), then mixed by MurmurHash3's
//! 64-bit finalizer (`fmix64`): FNV-1a alone spreads its low bits badly (modulo 2 it is the
//! parity of the bytes' low bits: 190 against 136 series in a real test), and the shard is taken
//! modulo `N`. Both are fixed algorithms with no seed and no platform dependence: a series lands
//! on the same shard on every machine, architecture and version of this crate; the fixed vectors
//! in the tests keep it so. (Prometheus's `hashmod` uses md5 of the joined source labels; this is not that, and need
//! not be: only the watches have to agree with each other.)

use std::{fmt, str::FromStr};

use promlearn_loader::Labels;
use serde::Deserialize;

use crate::Error;

/// Which share of the series this watch owns: shard `index` of `total` (`0/1`, everything, by
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    total: u64,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::ALL
    }
}

impl Shard {
    /// The one shard that owns every series.
    pub const ALL: Shard = Shard { index: 0, total: 1 };

    /// Shard `index` of `total`; `index` must be below `total`.
    pub fn new(index: u64, total: u64) -> Result<Shard, Error> {
        if total == 0 || index >= total {
            return Err(Error::Shard {
                text: format!("{index}/{total}"),
                why: "the index must be below the total, and the total at least 1",
            });
        }
        Ok(Shard { index, total })
    }

    /// The shard's index, from 0.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many shards there are.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether this shard owns the series with these labels.
    pub fn owns(&self, labels: &Labels) -> bool {
        self.total == 1 || label_hash(labels) % self.total == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// `I/N`, as `--shard` takes it.
impl FromStr for Shard {
    type Err = Error;

    fn from_str(text: &str) -> Result<Shard, Error> {
        let bad = |why| Error::Shard {
            text: text.to_owned(),
            why,
        };
        let (index, total) = text.split_once('/').ok_or_else(|| bad("it has no `/`"))?;
        let number = |n: &str| {
            n.trim()
                .parse::<u64>()
                .map_err(|_| bad("I and N are whole numbers"))
        };
        Shard::new(number(index)?, number(total)?)
    }
}

/// The file's `shard = { index = I, total = N }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShard {
    pub index: u64,
    pub total: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// MurmurHash3's 64-bit finalizer: every input bit moves every output bit.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The series' shard hash: `fmix64` of FNV-1a 64 of `name 0xff value 0xff` for each label,
/// sorted by name.
pub fn label_hash(labels: &Labels) -> u64 {
    fmix64(labels.iter().fold(FNV_OFFSET, |hash, (name, value)| {
        let hash = fnv1a(fnv1a(hash, name.as_bytes()), &[0xff]);
        fnv1a(fnv1a(hash, value.as_bytes()), &[0xff])
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{Config, backtest, engine::detector_fit, source::MemorySource};

    #[test]
    fn the_hash_is_fnv1a_and_never_changes() {
        // FNV-1a's published vectors: this is the algorithm, not a look-alike.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        // Fixed vectors of label sets (computed once, outside Rust, as fmix64 of FNV-1a of the
        // bytes `name 0xff value 0xff` sorted by name): a change here moves series between shards in every deployment, so it
        // must never happen silently.
        let vectors: [(&[(&str, &str)], u64); 4] = [
            (&[], 0xefd0_1f60_ba99_2926),
            (&[("a", "b")], 0xd1cc_4716_1832_0c9c),
            (
                &[
                    ("__name__", "up"),
                    ("instance", "localhost:9090"),
                    ("job", "prometheus"),
                ],
                0xd80d_d158_30ef_05e8,
            ),
            // Given in any order, hashed sorted.
            (&[("job", "x"), ("a", "1")], 0x2d9c_de86_d1b3_06c2),
        ];
        for (pairs, want) in vectors {
            assert_eq!(
                label_hash(&Labels::from_pairs(pairs.iter().copied())),
                want,
                "{pairs:?}"
            );
        }
        // Values that would run together without the separator do not collide.
        assert_ne!(
            label_hash(&Labels::from_pairs([("a", "bc")])),
            label_hash(&Labels::from_pairs([("ab", "c")]))
        );
    }

    #[test]
    fn series_that_differ_a_little_spread_evenly_over_any_number_of_shards() {
        let sets: Vec<Labels> = (0..10_000)
            .map(|i| {
                Labels::from_pairs([("instance", format!("10.0.{}.{}:9100", i / 256, i % 256))])
            })
            .collect();
        for total in [2, 3, 4, 8] {
            let mut counts = vec![0usize; total];
            for labels in &sets {
                counts[(label_hash(labels) % total as u64) as usize] += 1;
            }
            // Within four standard deviations of a fair coin's binomial spread.
            let (n, p) = (sets.len() as f64, 1.0 / total as f64);
            let sigma = (n * p * (1.0 - p)).sqrt();
            for c in &counts {
                assert!(
                    (*c as f64 - n * p).abs() < 4.0 * sigma,
                    "{total} shards: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn values_that_differ_in_letters_of_one_parity_still_spread() {
        // FNV-1a alone, modulo 2, is the parity of the bytes' low bits: these 13 values (every
        // letter odd) would all land on one of two shards.
        let sets: Vec<Labels> = (b'a'..=b'y')
            .step_by(2)
            .map(|c| Labels::from_pairs([("handler", format!("/api/{}", c as char))]))
            .collect();
        let plain: BTreeSet<u64> = sets
            .iter()
            .map(|l| {
                let h = l.iter().fold(FNV_OFFSET, |h, (n, v)| {
                    fnv1a(
                        fnv1a(fnv1a(fnv1a(h, n.as_bytes()), &[0xff]), v.as_bytes()),
                        &[0xff],
                    )
                });
                h % 2
            })
            .collect();
        assert_eq!(plain.len(), 1, "plain FNV-1a splits them after all");
        let on_zero = sets
            .iter()
            .filter(|l| label_hash(l).is_multiple_of(2))
            .count();
        assert!((1..13).contains(&on_zero), "{on_zero} of 13 on shard 0");
    }

    #[test]
    fn shards_parse_and_refuse_what_cannot_be() {
        assert_eq!("1/3".parse::<Shard>().unwrap(), Shard::new(1, 3).unwrap());
        assert_eq!(Shard::default().to_string(), "0/1");
        let file = |shard: &str| {
            format!(
                "endpoint = \"http://localhost:9090\"\n{shard}\n[[query]]\nname = \"q\"\nexpr = \"up\"\ndetector = {{ kind = \"zscore\" }}\n"
            )
        };
        let c = Config::from_toml(&file("shard = { index = 1, total = 2 }"), "w.toml").unwrap();
        assert_eq!(c.shard, Shard::new(1, 2).unwrap());
        assert!(c.summary().contains("shard 1/2"), "{}", c.summary());
        let e = Config::from_toml(&file("shard = { index = 2, total = 2 }"), "w.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("w.toml:2: shard: invalid shard `2/2`"), "{e}");
        let e = Config::from_toml(&file("shard = { index = 0, count = 2 }"), "w.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("w.toml:2") && e.contains("count"), "{e}");
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("I/N"), "{bad}: {e}");
        }
    }

    /// Every series of a backtest replayed unsharded and as shards 0/2 and 1/2: the shards'
    /// series are disjoint and together exactly the unsharded ones.
    #[test]
    fn two_shards_are_disjoint_and_together_the_whole() {
        let t0 = 1_700_000_000_000;
        let series: Vec<_> = (0..200)
            .map(|i| {
                let labels =
                    Labels::from_pairs([("instance", format!("host-{i}")), ("job", "node".into())]);
                let ts: Vec<i64> = (0..40).map(|k| t0 + k * 1000).collect();
                let vs = ts.iter().map(|t| (t % 7) as f64).collect();
                (labels, ts, vs)
            })
            .collect();
        let source = MemorySource::new(series).unwrap();
        let run = |shard: &str| {
            let mut config = Config::from_toml(
                &format!(
                    "endpoint = \"http://localhost:9090\"\n{shard}\n[[query]]\nname = \"q\"\nexpr = \"x\"\nstep = \"1s\"\ndetector = {{ kind = \"zscore\", window = 5 }}\nfit_window = \"20s\"\nfit_every = \"10s\"\n"
                ),
                "shard.toml",
            )
            .unwrap();
            config.max_series = 1_000;
            let mut seen = BTreeSet::new();
            backtest::run_with(
                &config,
                &source,
                t0 + 20_000,
                t0 + 39_000,
                detector_fit(),
                &mut |p| {
                    seen.insert(p.labels.clone());
                    Ok(())
                },
            )
            .unwrap();
            seen
        };
        let all = run("");
        let zero = run("shard = { index = 0, total = 2 }");
        let one = run("shard = { index = 1, total = 2 }");
        assert_eq!(all.len(), 200);
        assert!(zero.is_disjoint(&one));
        assert_eq!(zero.union(&one).cloned().collect::<BTreeSet<_>>(), all);
        // Roughly even: FNV-1a spreads 200 series over two shards.
        assert!(
            (70..=130).contains(&zero.len()),
            "{} / {}",
            zero.len(),
            one.len()
        );
    }
}
