//! Dataset operations on plain `f64` series: scaling, sliding windows, input/target pairs,
//! shuffle, repeat and batching, mirroring the `tf.data` calls of the TensorFlow-IO tutorial.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, check_finite};
use crate::rng::SeededRng;

/// How [`Scaler`] maps values into the model's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScaleKind {
    /// `v / max(v)`, the tutorial's scaling. Needs a positive maximum.
    Max,
    /// `(v - min) / (max - min)`, into [0, 1] whatever the sign of the data.
    MinMax,
}

/// A fitted scaling that remembers its parameters, so predictions can be mapped back and the
/// same scaling applied to new data at detection time.
///
/// ```
/// use promlearn_model::{ScaleKind, Scaler};
///
/// let series = [2.0, 4.0, 8.0];
/// let scaler = Scaler::fit(&series, ScaleKind::Max)?;
/// let scaled = scaler.transform(&series)?;
/// assert_eq!(scaled, vec![0.25, 0.5, 1.0]);
/// assert_eq!(scaler.inverse_transform(&scaled), series.to_vec());
/// # Ok::<(), promlearn_model::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Which scaling.
    pub kind: ScaleKind,
    /// Smallest value of the series it was fitted on.
    pub min: f64,
    /// Largest value of the series it was fitted on.
    pub max: f64,
}

impl Scaler {
    /// Learns the scaling parameters from `series`.
    ///
    /// Errors: empty series, NaN/inf values, for [`ScaleKind::MinMax`] a constant series (its
    /// span is zero), and for [`ScaleKind::Max`] a maximum <= 0 (dividing by it would blow up or
    /// flip the sign). A constant positive series max-scales to all ones, as the tutorial's
    /// `v / max(v)` does: an idle server's memory statistics are often flat for seconds.
    pub fn fit(series: &[f64], kind: ScaleKind) -> Result<Self> {
        if series.is_empty() {
            return Err(Error::TooFewSamples {
                what: "fitting a scaler".into(),
                needed: 1,
                got: 0,
            });
        }
        check_finite("the series to scale", series)?;
        let min = series.iter().copied().fold(f64::INFINITY, f64::min);
        let max = series.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if kind == ScaleKind::MinMax && max == min {
            return Err(Error::Unscalable {
                reason: "the series is constant, so min-max scaling would divide by zero",
                min,
                max,
            });
        }
        if kind == ScaleKind::Max && max <= 0.0 {
            return Err(Error::Unscalable {
                reason: "max scaling needs a positive maximum",
                min,
                max,
            });
        }
        Ok(Self { kind, min, max })
    }

    fn offset_and_span(&self) -> (f64, f64) {
        match self.kind {
            ScaleKind::Max => (0.0, self.max),
            ScaleKind::MinMax => (self.min, self.max - self.min),
        }
    }

    /// Scales `values` with the fitted parameters. Rejects NaN/inf.
    pub fn transform(&self, values: &[f64]) -> Result<Vec<f64>> {
        check_finite("the values to scale", values)?;
        let (offset, span) = self.offset_and_span();
        Ok(values.iter().map(|v| (v - offset) / span).collect())
    }

    /// Maps scaled values (e.g. predictions) back to the original units.
    pub fn inverse_transform(&self, scaled: &[f64]) -> Vec<f64> {
        let (offset, span) = self.offset_and_span();
        scaled.iter().map(|v| v * span + offset).collect()
    }
}

/// Sliding windows of `size` values, each starting `shift` after the previous one; a trailing
/// window that would be short is dropped (`tf.data`'s `window(..., drop_remainder=True)`).
///
/// ```
/// let w = promlearn_model::windows(&[1.0, 2.0, 3.0, 4.0], 2, 1)?;
/// assert_eq!(w, vec![vec![1.0, 2.0], vec![2.0, 3.0], vec![3.0, 4.0]]);
/// # Ok::<(), promlearn_model::Error>(())
/// ```
pub fn windows(series: &[f64], size: usize, shift: usize) -> Result<Vec<Vec<f64>>> {
    if size == 0 || shift == 0 {
        return Err(Error::InvalidConfig(format!(
            "window size and shift must be at least 1 (got size {size}, shift {shift})"
        )));
    }
    if series.len() < size {
        return Err(Error::TooFewSamples {
            what: format!("a window of {size}"),
            needed: size,
            got: series.len(),
        });
    }
    Ok((0..=series.len() - size)
        .step_by(shift)
        .map(|start| series[start..start + size].to_vec())
        .collect())
}

/// What a training target is, given an input window `v[i .. i+n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetMode {
    /// Tutorial-faithful: the target is the *next window* `v[i+1 .. i+n+1]` (the tutorial's
    /// `y = windows.skip(1)`), and the loss compares the single prediction with each of its
    /// `n` values, as Keras broadcasts a `(1, 1)` prediction against a `(1, n, 1)` target.
    /// So the model learns roughly the mean of the next window, not a forecast. Use it to
    /// reproduce the tutorial's numbers.
    TutorialNextWindow,
    /// Forecasting: the target is the next value `v[i+n]`. Use it for real forecasts and
    /// anomaly scores.
    NextValue,
}

impl TargetMode {
    /// How many target values each input window has.
    pub fn target_width(self, n_steps: usize) -> usize {
        match self {
            TargetMode::TutorialNextWindow => n_steps,
            TargetMode::NextValue => 1,
        }
    }
}

/// Input windows paired with their targets, stored flat. Operations return new datasets, as
/// `tf.data` does.
///
/// ```
/// use promlearn_model::{Dataset, TargetMode};
///
/// let series: Vec<f64> = (0..12).map(|i| i as f64 / 11.0).collect();
/// let ds = Dataset::from_series(&series, 2, TargetMode::TutorialNextWindow)?;
/// assert_eq!(ds.len(), 10); // the tutorial's x = take(10), y = skip(1).take(10)
/// let batches = ds.repeat(10).batch(1)?;
/// assert_eq!(batches.len(), 100);
/// # Ok::<(), promlearn_model::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    n_steps: usize,
    target_width: usize,
    inputs: Vec<f64>,
    targets: Vec<f64>,
}

impl Dataset {
    /// Windows of `n_steps` over a (scaled) series with shift 1, each paired with its target
    /// as `mode` says. Gives `series.len() - n_steps` pairs.
    pub fn from_series(series: &[f64], n_steps: usize, mode: TargetMode) -> Result<Self> {
        if n_steps == 0 {
            return Err(Error::InvalidConfig("n_steps must be at least 1".into()));
        }
        check_finite("the training series", series)?;
        if series.len() < n_steps + 1 {
            return Err(Error::TooFewSamples {
                what: format!("windows of {n_steps} steps plus a target"),
                needed: n_steps + 1,
                got: series.len(),
            });
        }
        let pairs = series.len() - n_steps;
        let width = mode.target_width(n_steps);
        let mut inputs = Vec::with_capacity(pairs * n_steps);
        let mut targets = Vec::with_capacity(pairs * width);
        for i in 0..pairs {
            inputs.extend_from_slice(&series[i..i + n_steps]);
            match mode {
                TargetMode::TutorialNextWindow => {
                    targets.extend_from_slice(&series[i + 1..i + 1 + n_steps])
                }
                TargetMode::NextValue => targets.push(series[i + n_steps]),
            }
        }
        Ok(Self {
            n_steps,
            target_width: width,
            inputs,
            targets,
        })
    }

    /// Pairs inputs with targets one to one (`tf.data.Dataset.zip`). Unlike `zip`, unequal
    /// counts are an error rather than silently truncated.
    ///
    /// ```
    /// use promlearn_model::Dataset;
    ///
    /// let x = vec![vec![0.1, 0.2], vec![0.2, 0.3]];
    /// let y = vec![vec![0.3], vec![0.4]];
    /// assert_eq!(Dataset::zip(&x, &y)?.len(), 2);
    /// assert!(Dataset::zip(&x, &y[..1]).is_err());
    /// # Ok::<(), promlearn_model::Error>(())
    /// ```
    pub fn zip(inputs: &[Vec<f64>], targets: &[Vec<f64>]) -> Result<Self> {
        if inputs.len() != targets.len() {
            return Err(Error::ShapeMismatch {
                what: "zip of inputs and targets".into(),
                expected: format!("{} targets, one per input", inputs.len()),
                got: format!("{} targets", targets.len()),
            });
        }
        let (Some(first_x), Some(first_y)) = (inputs.first(), targets.first()) else {
            return Err(Error::TooFewSamples {
                what: "a dataset".into(),
                needed: 1,
                got: 0,
            });
        };
        let (n_steps, width) = (first_x.len(), first_y.len());
        if n_steps == 0 || width == 0 {
            return Err(Error::InvalidConfig(
                "input windows and targets must hold at least one value".into(),
            ));
        }
        let mut flat_x = Vec::with_capacity(inputs.len() * n_steps);
        let mut flat_y = Vec::with_capacity(inputs.len() * width);
        for (i, (x, y)) in inputs.iter().zip(targets).enumerate() {
            if x.len() != n_steps || y.len() != width {
                return Err(Error::ShapeMismatch {
                    what: format!("pair {i}"),
                    expected: format!("input of {n_steps}, target of {width}"),
                    got: format!("input of {}, target of {}", x.len(), y.len()),
                });
            }
            check_finite(&format!("input {i}"), x)?;
            check_finite(&format!("target {i}"), y)?;
            flat_x.extend_from_slice(x);
            flat_y.extend_from_slice(y);
        }
        Ok(Self {
            n_steps,
            target_width: width,
            inputs: flat_x,
            targets: flat_y,
        })
    }

    /// Number of (input, target) pairs.
    pub fn len(&self) -> usize {
        self.inputs.len() / self.n_steps
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Length of each input window.
    pub fn n_steps(&self) -> usize {
        self.n_steps
    }

    /// Values per target (1, or `n_steps` in the tutorial mode).
    pub fn target_width(&self) -> usize {
        self.target_width
    }

    /// The `i`-th input window.
    pub fn input(&self, i: usize) -> &[f64] {
        &self.inputs[i * self.n_steps..(i + 1) * self.n_steps]
    }

    /// The `i`-th target.
    pub fn target(&self, i: usize) -> &[f64] {
        &self.targets[i * self.target_width..(i + 1) * self.target_width]
    }

    fn select(&self, order: impl Iterator<Item = usize>) -> Self {
        let mut inputs = Vec::new();
        let mut targets = Vec::new();
        for i in order {
            inputs.extend_from_slice(self.input(i));
            targets.extend_from_slice(self.target(i));
        }
        Self {
            n_steps: self.n_steps,
            target_width: self.target_width,
            inputs,
            targets,
        }
    }

    /// The pairs in an order fixed by `seed` (a full Fisher-Yates shuffle, not a buffered one).
    pub fn shuffle(&self, seed: u64) -> Self {
        let mut order: Vec<usize> = (0..self.len()).collect();
        let mut rng = SeededRng::new(seed);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        self.select(order.into_iter())
    }

    /// The pairs `times` times over, in order.
    pub fn repeat(&self, times: usize) -> Self {
        let n = self.len();
        self.select((0..times).flat_map(|_| 0..n))
    }

    /// Consecutive batches of `size` pairs; the last may be smaller (`tf.data` keeps it too).
    pub fn batch(&self, size: usize) -> Result<Vec<Batch>> {
        if size == 0 {
            return Err(Error::InvalidConfig("batch size must be at least 1".into()));
        }
        Ok(self
            .inputs
            .chunks(size * self.n_steps)
            .zip(self.targets.chunks(size * self.target_width))
            .map(|(x, y)| Batch {
                size: x.len() / self.n_steps,
                n_steps: self.n_steps,
                target_width: self.target_width,
                inputs: x.iter().map(|&v| v as f32).collect(),
                targets: y.iter().map(|&v| v as f32).collect(),
            })
            .collect())
    }
}

/// One training batch in the model's precision (`f32`, as Keras trains). Built by
/// [`Dataset::batch`] or [`Batch::new`], which check shapes and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    size: usize,
    n_steps: usize,
    target_width: usize,
    inputs: Vec<f32>,
    targets: Vec<f32>,
}

impl Batch {
    /// Builds a batch from flat row-major buffers, checking their shapes and values.
    pub fn new(
        n_steps: usize,
        target_width: usize,
        inputs: Vec<f32>,
        targets: Vec<f32>,
    ) -> Result<Self> {
        if n_steps == 0 || target_width == 0 {
            return Err(Error::InvalidConfig(
                "n_steps and target_width must be at least 1".into(),
            ));
        }
        let size = inputs.len() / n_steps;
        if size == 0
            || !inputs.len().is_multiple_of(n_steps)
            || targets.len() != size * target_width
        {
            return Err(Error::ShapeMismatch {
                what: "batch buffers".into(),
                expected: format!(
                    "inputs of k*{n_steps} values and targets of k*{target_width}, k >= 1"
                ),
                got: format!("{} input and {} target values", inputs.len(), targets.len()),
            });
        }
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        check_finite("batch inputs", &widen(&inputs))?;
        check_finite("batch targets", &widen(&targets))?;
        Ok(Self {
            size,
            n_steps,
            target_width,
            inputs,
            targets,
        })
    }

    /// Pairs in the batch.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Input window length.
    pub fn n_steps(&self) -> usize {
        self.n_steps
    }

    /// Values per target.
    pub fn target_width(&self) -> usize {
        self.target_width
    }

    /// Inputs `[size, n_steps]`, row-major.
    pub fn inputs(&self) -> &[f32] {
        &self.inputs
    }

    /// Targets `[size, target_width]`, row-major.
    pub fn targets(&self) -> &[f32] {
        &self.targets
    }
}
