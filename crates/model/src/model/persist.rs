//! A model's files: `model.safetensors` (weights under candle_nn's names, see
//! [`Forecaster::candle_tensors`]) and `model.json` (config, scaler, threshold).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
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

impl Forecaster {
    /// Writes `model.safetensors` (candle names, see [`candle_tensors`](Self::candle_tensors))
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
        candle_core::safetensors::save(&self.candle_tensors()?, dir.join(WEIGHTS_FILE))?;
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
        if !weights_path.exists() {
            return Err(Error::Io {
                path: weights_path,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)?;
        let h = settings.config.hidden;
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = tensors
                .get(name)
                .ok_or_else(|| bad(&weights_path, format!("tensor {name} is missing")))?;
            if t.dims() != shape {
                return Err(bad(
                    &weights_path,
                    format!(
                        "tensor {name} has shape {:?}, expected {shape:?} for LSTM({h})",
                        t.dims()
                    ),
                ));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        let flat = |t: Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let weights = KerasWeights {
            kernel: flat(get("lstm.weight_ih_l0", &[4 * h, 1])?.t()?)?,
            recurrent_kernel: flat(get("lstm.weight_hh_l0", &[4 * h, h])?.t()?)?,
            bias: flat((get("lstm.bias_ih_l0", &[4 * h])? + get("lstm.bias_hh_l0", &[4 * h])?)?)?,
            dense_kernel: flat(get("dense.weight", &[1, h])?)?,
            dense_bias: flat(get("dense.bias", &[1])?)?,
        };
        let mut model = Self::from_keras_weights(settings.config, &weights)?;
        model.scaler = settings.scaler;
        model.threshold = settings.threshold;
        Ok(model)
    }
}
