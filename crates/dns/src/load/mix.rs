//! What a load run asks for: weighted names and weighted record types.

use std::{fmt, str::FromStr};

use hickory_resolver::proto::rr::{Name, RecordType};

use crate::{
    DnsError,
    query::{parse_name, parse_record_type},
    wire,
};

/// One kind of name in a [`NameMix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// Always this name (`demo1.example.org`).
    Exact(Name),
    /// A fresh random label under this zone each time (`*.example.org`), so no cache between
    /// here and the authority can answer it.
    RandomSubdomain(Name),
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamePattern::Exact(name) => write!(f, "{name}"),
            NamePattern::RandomSubdomain(zone) if zone.is_root() => f.write_str("*."),
            NamePattern::RandomSubdomain(zone) => write!(f, "*.{zone}"),
        }
    }
}

impl FromStr for NamePattern {
    type Err = DnsError;

    fn from_str(text: &str) -> Result<NamePattern, DnsError> {
        let text = text.trim();
        match text.strip_prefix("*.") {
            Some(zone) => {
                let zone = if zone.is_empty() { "." } else { zone };
                let zone = parse_name(zone)?;
                let room = wire::MAX_NAME_WIRE_LEN - 1 - wire::RANDOM_LABEL_LEN;
                if wire::name_wire(&zone).len() > room {
                    return Err(DnsError::BadName {
                        name: text.to_owned(),
                        reason: "no room left under this zone for a random label".into(),
                    });
                }
                Ok(NamePattern::RandomSubdomain(zone))
            }
            None => Ok(NamePattern::Exact(parse_name(text)?)),
        }
    }
}

/// Weighted names to query.
///
/// ```
/// use promlearn_dns::NameMix;
///
/// // Three quarters demo1, one quarter random names under example.org (weights default to 1).
/// let names: NameMix = "demo1.example.org=3,*.example.org".parse()?;
/// assert_eq!(names.to_string(), "demo1.example.org.=3,*.example.org.=1");
/// assert!("demo1..example.org".parse::<NameMix>().is_err());
/// # Ok::<(), promlearn_dns::DnsError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NameMix {
    entries: Vec<(NamePattern, f64)>,
}

impl NameMix {
    /// Only `name`, every time (the tutorial's `demo1.example.org`).
    pub fn exact(name: &str) -> Result<NameMix, DnsError> {
        Ok(NameMix {
            entries: vec![(NamePattern::Exact(parse_name(name)?), 1.0)],
        })
    }

    /// No names yet: add some with [`NameMix::with`], or send only NXDOMAIN names.
    pub fn empty() -> NameMix {
        NameMix {
            entries: Vec::new(),
        }
    }

    /// Adds `pattern` with a relative `weight` (>= 0; 0 never picks it); checked by
    /// [`LoadConfig::validate`](crate::LoadConfig::validate).
    pub fn with(mut self, pattern: NamePattern, weight: f64) -> NameMix {
        self.entries.push((pattern, weight));
        self
    }

    /// The patterns with their relative weights, in the order given.
    pub fn entries(&self) -> &[(NamePattern, f64)] {
        &self.entries
    }

    /// No pattern at all: every query then needs an NXDOMAIN name (`nxdomain_share` 1).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromStr for NameMix {
    type Err = DnsError;

    /// `name[=weight],...`; `*.zone` asks for random subdomains of `zone`.
    fn from_str(text: &str) -> Result<NameMix, DnsError> {
        let entries = parse_weighted(text, "names", |name| name.parse::<NamePattern>())?;
        Ok(NameMix { entries })
    }
}

impl fmt::Display for NameMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_weighted(f, &self.entries)
    }
}

/// Weighted record types to query.
///
/// ```
/// use promlearn_dns::{TypeMix, proto::rr::RecordType};
///
/// let types: TypeMix = "A=8,AAAA=2".parse()?;
/// assert_eq!(types.entries(), [(RecordType::A, 8.0), (RecordType::AAAA, 2.0)]);
/// assert_eq!(TypeMix::only(RecordType::MX).to_string(), "MX=1");
/// assert_eq!("A=8,BOGUS".parse::<TypeMix>().unwrap_err().to_string(),
///            "unknown record type `BOGUS` (try A, AAAA, MX, TXT, SRV, ... or TYPE65280)");
/// # Ok::<(), promlearn_dns::DnsError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TypeMix {
    entries: Vec<(RecordType, f64)>,
}

impl TypeMix {
    /// Only `record_type`, every time.
    pub fn only(record_type: RecordType) -> TypeMix {
        TypeMix {
            entries: vec![(record_type, 1.0)],
        }
    }

    /// Adds `record_type` with a relative `weight` (>= 0; 0 never picks it).
    pub fn with(mut self, record_type: RecordType, weight: f64) -> TypeMix {
        self.entries.push((record_type, weight));
        self
    }

    /// The types with their relative weights, in the order given.
    pub fn entries(&self) -> &[(RecordType, f64)] {
        &self.entries
    }
}

impl FromStr for TypeMix {
    type Err = DnsError;

    /// `TYPE[=weight],...`, e.g. `A=8,AAAA=2`.
    fn from_str(text: &str) -> Result<TypeMix, DnsError> {
        let entries = parse_weighted(text, "types", parse_record_type)?;
        Ok(TypeMix { entries })
    }
}

impl fmt::Display for TypeMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_weighted(f, &self.entries)
    }
}

fn write_weighted<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    entries: &[(T, f64)],
) -> fmt::Result {
    for (i, (item, weight)) in entries.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{item}={weight}")?;
    }
    Ok(())
}

fn parse_weighted<T>(
    text: &str,
    what: &str,
    parse: impl Fn(&str) -> Result<T, DnsError>,
) -> Result<Vec<(T, f64)>, DnsError> {
    let mut entries = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (item, weight) = match item.rsplit_once('=') {
            Some((item, weight)) => {
                let weight = weight
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|w| w.is_finite() && *w >= 0.0);
                let weight = weight.ok_or_else(|| {
                    DnsError::BadConfig(format!(
                        "{what}: `{item}` needs a weight >= 0 after `=` (e.g. {item}=2)"
                    ))
                })?;
                (item.trim(), weight)
            }
            None => (item, 1.0),
        };
        entries.push((parse(item)?, weight));
    }
    if entries.is_empty() {
        return Err(DnsError::BadConfig(format!("{what}: none given")));
    }
    Ok(entries)
}

/// Cumulative weights, for picking an index with one random number.
#[derive(Debug, Clone)]
pub(crate) struct Picker {
    cumulative: Vec<f64>,
}

impl Picker {
    /// `None` when nothing can be picked (no entries, or all weights zero).
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Option<Picker> {
        let mut total = 0.0;
        let cumulative: Vec<f64> = weights
            .into_iter()
            .map(|weight| {
                total += weight;
                total
            })
            .collect();
        (total > 0.0 && total.is_finite()).then_some(Picker { cumulative })
    }

    /// Picks with `unit` uniform in `[0, 1)`.
    pub(crate) fn pick(&self, unit: f64) -> usize {
        let total = *self.cumulative.last().expect("a picker has entries");
        let target = unit * total;
        // A zero-weight entry has the same cumulative value as the one before it, so `<=` skips it.
        self.cumulative
            .partition_point(|&edge| edge <= target)
            .min(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_follows_weights_and_skips_zero_weights() {
        let picker = Picker::new([3.0, 0.0, 1.0]).unwrap();
        assert_eq!(picker.pick(0.0), 0);
        assert_eq!(picker.pick(0.74), 0);
        assert_eq!(picker.pick(0.75), 2);
        assert_eq!(picker.pick(0.999_999), 2);
        assert!(Picker::new([0.0, 0.0]).is_none());
        assert!(Picker::new([]).is_none());
        let counts = (0..1000).fold([0; 3], |mut counts, i| {
            counts[picker.pick(f64::from(i) / 1000.0)] += 1;
            counts
        });
        assert_eq!(counts, [750, 0, 250]);
    }

    #[test]
    fn name_patterns_parse() {
        let mix: NameMix = " demo1.example.org = 2 , *.example.org, *. "
            .parse()
            .unwrap();
        assert_eq!(
            mix.entries(),
            [
                (
                    NamePattern::Exact(Name::from_ascii("demo1.example.org.").unwrap()),
                    2.0
                ),
                (
                    NamePattern::RandomSubdomain(Name::from_ascii("example.org.").unwrap()),
                    1.0
                ),
                (NamePattern::RandomSubdomain(Name::root()), 1.0),
            ]
        );
        assert_eq!(
            mix.to_string(),
            "demo1.example.org.=2,*.example.org.=1,*.=1"
        );
        assert_eq!(mix.to_string().parse::<NameMix>().unwrap(), mix);
    }

    #[test]
    fn bad_mixes_are_typed_errors() {
        let err = |text: &str| text.parse::<NameMix>().unwrap_err().to_string();
        assert_eq!(err(""), "bad load configuration: names: none given");
        assert_eq!(
            err("demo1.example.org=lots"),
            "bad load configuration: names: `demo1.example.org` needs a weight >= 0 after `=` (e.g. demo1.example.org=2)"
        );
        assert!(err("a..b").starts_with("bad domain name `a..b`"));
        let long_zone = vec!["a".repeat(60); 4].join(".");
        assert!(err(&format!("*.{long_zone}")).contains("no room left under this zone"));
        assert!(
            "A=-1"
                .parse::<TypeMix>()
                .unwrap_err()
                .to_string()
                .contains("needs a weight >= 0")
        );
        assert!(matches!(
            "NOPE".parse::<TypeMix>(),
            Err(DnsError::BadRecordType(_))
        ));
    }

    #[test]
    fn types_parse_in_any_case_and_by_number() {
        let mix: TypeMix = "a, aaaa=3, TYPE65280=0.5".parse().unwrap();
        assert_eq!(
            mix.entries(),
            [
                (RecordType::A, 1.0),
                (RecordType::AAAA, 3.0),
                (RecordType::Unknown(65280), 0.5)
            ]
        );
    }
}
