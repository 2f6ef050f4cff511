//! Streaming judgement: what one series carries from one inference to the next
//! ([`StreamState`]), and how a fitted model advances it over the points it has not judged yet.

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::detectors::Fitted;
use crate::error::Result;
use crate::grid;

/// What one series carries from one judgement to the next: small (a few hundred bytes), kept
/// across refits (a new fitted model continues the old one's state), and serde so a service can
/// save it. A new series starts from [`StreamState::new`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamState {
    /// Unix ms of the newest point passed through [`Fitted::advance`].
    judged_through_ms: Option<i64>,
}

impl StreamState {
    /// The state of a series nothing has been judged of yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unix ms of the newest point already passed through [`Fitted::advance`] (judged or not);
    /// `None` on a new state.
    pub fn judged_through_ms(&self) -> Option<i64> {
        self.judged_through_ms
    }
}

/// The index of the first point of `timestamps` newer than what `state` has judged through.
pub(crate) fn first_new(state: &StreamState, timestamps: &[i64]) -> usize {
    match state.judged_through_ms {
        Some(t) => timestamps.partition_point(|&x| x <= t),
        None => 0,
    }
}

/// [`Fitted::advance`] by the model's stateless analysis: the new points are judged with
/// `analyse` over everything given, and the state only remembers how far it got.
pub(crate) fn advance_stateless<F: Fitted + ?Sized>(
    fitted: &F,
    state: &mut StreamState,
    timestamps: &[i64],
    values: &[f64],
) -> Result<Analysis> {
    grid::check(timestamps, values)?;
    let from = first_new(state, timestamps);
    let name = fitted.spec().name();
    if from == timestamps.len() {
        return Ok(Analysis::unjudged(name, &[], &[]));
    }
    let full = fitted.analyse(timestamps, values)?;
    state.judged_through_ms = timestamps.last().copied();
    Ok(full.slice(from..timestamps.len()))
}
