//! A model's files: `model.safetensors` (weights under candle_nn's names, see
//! [`Forecaster::weight_tensors`]) and `model.json` (config, scaler, threshold). The
//! safetensors file is read and written with the `safetensors` crate alone, so that a program
//! that only trains and loads models builds without candle.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use super::Forecaster;
use crate::config::{KerasWeights, ModelConfig};
use crate::data::Scaler;
use crate::error::{Error, Result};

const WEIGHTS_FILE: &str = "model.safetensors";
const SETTINGS_FILE: &str = "model.json";
const FORMAT: &str = "promlearn-model";
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Settings {
    format: String,
    version: u32,
    config: ModelConfig,
    scaler: Option<Scaler>,
    threshold: Option<SavedThreshold>,
}

/// The anomaly threshold an older `promlearn train` saved in `model.json`: a quantile of the
/// training errors, and its value in scaled units. Kept only so that such models still load;
/// how a threshold is learned and applied is promlearn-detect's (ARCHITECTURE.md), and nothing
/// here computes one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SavedThreshold {
    /// The quantile it was learned at, in [0, 1].
    pub quantile: f64,
    /// The error at that quantile, in scaled units.
    pub value: f64,
}

/// One tensor of the weights file: its name, shape and values (row-major).
type NamedTensor = (&'static str, Vec<usize>, Vec<f32>);

/// `values`, a row-major `[rows, cols]` matrix, as `[cols, rows]`.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

/// A tensor's values as `f32`, from any float type PyTorch or candle writes.
fn to_f32(tensor: &TensorView<'_>) -> Option<Vec<f32>> {
    let data = tensor.data();
    Some(match tensor.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

impl Forecaster {
    /// The weights under the names candle_nn's LSTM and Linear give them (and PyTorch's
    /// `nn.LSTM`): `lstm.weight_ih_l0 [4H, 1]`, `lstm.weight_hh_l0 [4H, H]`, `lstm.bias_ih_l0`,
    /// `lstm.bias_hh_l0` (zero: Keras has one bias), `dense.weight [1, H]`, `dense.bias [1]`.
    pub fn weight_tensors(&self) -> Vec<NamedTensor> {
        let l = self.layout;
        let (h, g) = (l.hidden, l.gates());
        let p = &self.params;
        vec![
            (
                "lstm.weight_ih_l0",
                vec![g, l.n_in],
                transposed(&p[l.kernel()], l.n_in, g),
            ),
            (
                "lstm.weight_hh_l0",
                vec![g, h],
                transposed(&p[l.recurrent()], h, g),
            ),
            ("lstm.bias_ih_l0", vec![g], p[l.bias()].to_vec()),
            ("lstm.bias_hh_l0", vec![g], vec![0.0; g]),
            ("dense.weight", vec![1, h], p[l.dense_kernel()].to_vec()),
            ("dense.bias", vec![1], p[l.dense_bias()..].to_vec()),
        ]
    }

    /// Writes `model.safetensors` (candle names, see [`weight_tensors`](Self::weight_tensors))
    /// and `model.json` (config, scaler, threshold) into `dir`, creating it. The optimizer
    /// state is not saved: a loaded model predicts and detects; further training restarts Adam.
    ///
    /// ```
    /// use promlearn_model::{Forecaster, ModelConfig};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let model = Forecaster::new(ModelConfig::forecasting(3, 4))?;
    /// model.save(dir.path())?;
    /// let loaded = Forecaster::load(dir.path())?;
    /// assert_eq!(loaded.keras_weights(), model.keras_weights());
    /// # Ok::<(), promlearn_model::Error>(())
    /// ```
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let tensors = self.weight_tensors();
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views = tensors
            .iter()
            .zip(&bytes)
            .map(|((name, shape, _), data)| {
                TensorView::new(Dtype::F32, shape.clone(), data).map(|view| (*name, view))
            })
            .collect::<std::result::Result<Vec<_>, _>>();
        let file = views
            .and_then(|views| safetensors::serialize(views, None))
            .map_err(|e| Error::BadModelFile {
                path: weights_path.clone(),
                reason: format!("encoding the weights: {e}"),
            })?;
        std::fs::write(&weights_path, file).map_err(|source| Error::Io {
            path: weights_path,
            source,
        })?;
        let settings = Settings {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            config: self.config.clone(),
            scaler: self.scaler,
            threshold: self.threshold,
        };
        let path = dir.join(SETTINGS_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&settings)?)
            .map_err(|source| Error::Io { path, source })
    }

    /// Loads what [`save`](Self::save) wrote. Both biases of the safetensors file are summed,
    /// so weights exported from PyTorch's `nn.LSTM` under the same names load too.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let json_path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&json_path).map_err(|source| Error::Io {
            path: json_path.clone(),
            source,
        })?;
        let bad = |path: &PathBuf, reason: String| Error::BadModelFile {
            path: path.clone(),
            reason,
        };
        let settings: Settings =
            serde_json::from_str(&text).map_err(|e| bad(&json_path, e.to_string()))?;
        if settings.format != FORMAT || settings.version != FORMAT_VERSION {
            return Err(bad(
                &json_path,
                format!(
                    "format {} v{} is not {FORMAT} v{FORMAT_VERSION}",
                    settings.format, settings.version
                ),
            ));
        }
        settings.config.validate()?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights_path).map_err(|source| Error::Io {
            path: weights_path.clone(),
            source,
        })?;
        let tensors =
            SafeTensors::deserialize(&bytes).map_err(|e| bad(&weights_path, e.to_string()))?;
        let h = settings.config.hidden;
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = tensors
                .tensor(name)
                .map_err(|_| bad(&weights_path, format!("tensor {name} is missing")))?;
            if t.shape() != shape {
                return Err(bad(
                    &weights_path,
                    format!(
                        "tensor {name} has shape {:?}, expected {shape:?} for LSTM({h})",
                        t.shape()
                    ),
                ));
            }
            to_f32(&t).ok_or_else(|| {
                bad(
                    &weights_path,
                    format!("tensor {name} holds {:?}, not floats", t.dtype()),
                )
            })
        };
        let bias_ih = get("lstm.bias_ih_l0", &[4 * h])?;
        let bias_hh = get("lstm.bias_hh_l0", &[4 * h])?;
        let weights = KerasWeights {
            kernel: transposed(&get("lstm.weight_ih_l0", &[4 * h, 1])?, 4 * h, 1),
            recurrent_kernel: transposed(&get("lstm.weight_hh_l0", &[4 * h, h])?, 4 * h, h),
            bias: bias_ih.iter().zip(&bias_hh).map(|(a, b)| a + b).collect(),
            dense_kernel: get("dense.weight", &[1, h])?,
            dense_bias: get("dense.bias", &[1])?,
        };
        let mut model = Self::from_keras_weights(settings.config, &weights)?;
        model.scaler = settings.scaler;
        model.threshold = settings.threshold;
        Ok(model)
    }
}
