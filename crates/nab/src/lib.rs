//! The Numenta Anomaly Benchmark (NAB) in Rust: NAB's corpus (58 labelled series, 365,558 rows),
//! NAB's results files, and a faithful port of NAB's scorer that reproduces the published
//! scoreboard from the published results.
//!
//! - [`Corpus::load`] reads NAB's directory (`fixtures/nab` in this repository): every data
//!   file's rows as NAB has them ([`DataFile::timestamps`], [`DataFile::values`]), its anomaly
//!   [`Window`]s, a cleaned series for detectors ([`DataFile::cleaned`]: sorted, one point per
//!   timestamp, with the map back to the rows and the [`Repair`]s made), and the cost
//!   [`Profile`]s.
//! - [`Results`] hold a detector's anomaly score for every original row; [`write_results`] and
//!   [`read_results`] speak NAB's results directories, so NAB's own Python scorer can check any
//!   figure; [`read_published`] reads NAB's published scores.
//! - [`score`] is NAB's score at the threshold optimised across the corpus, [`score_at`] at a
//!   fixed threshold; [`Sweep`] sorts a detector's scores once for several profiles.
//!
//! NAB's rules, which every score here follows: the first 15% of each file (at most 750 rows)
//! is probation and not scored ([`probation_len`]); a detection in a window earns by how early
//! it is ([`scaled_sigmoid`]); one threshold per profile for the whole corpus; scores are
//! normalised between the null detector (0) and the perfect one (100). Streaming (no look-ahead)
//! and one set of detector settings are the detector's to keep.
//!
//! ```
//! use promlearn_nab::{Corpus, Profile, Results, score, score_at};
//!
//! let nab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/nab");
//! let corpus = Corpus::load(nab)?;
//! assert_eq!((corpus.files().len(), corpus.window_count()), (58, 116));
//! for repair in corpus.repairs() {
//!     eprintln!("warning: {repair}"); // a program's choice; the library never prints
//! }
//!
//! // NAB's null detector: the same score everywhere. Its best threshold is never to alert,
//! // which is NAB's zero.
//! let null = Results::constant(&corpus, "null", 0.5);
//! let standard = Profile::standard();
//! let scored = score(&corpus, &null, &standard)?;
//! assert_eq!((scored.raw, scored.normalized), (-116.0, 0.0));
//!
//! // Alerting on every row, as a 0/1 flag that is always 1 scored at threshold 0.5, is far
//! // worse than never alerting.
//! let always = Results::constant(&corpus, "always", 1.0);
//! assert!(score_at(&corpus, &always, &standard, 0.5)?.normalized < -1000.0);
//! # Ok::<(), promlearn_nab::Error>(())
//! ```

mod clean;
mod corpus;
pub mod devops;
mod error;
mod results;
mod score;
mod sweep;
mod text;
mod time;

pub use clean::{Cleaned, Repair, RepairKind, clean};
pub use corpus::{Corpus, DataFile, Profile, Window};
pub use error::Error;
pub use results::{
    FileResults, Results, read_published, read_results, results_path, write_results,
};
pub use score::{FileScore, NEVER, Scored, Sweep, score, score_at};
pub use sweep::{PROBATION_PERCENT, probation_len, scaled_sigmoid, sigmoid};
pub use time::{format_timestamp, parse_timestamp};
