//! The model as a reader should meet it first: LSTM(H) + Dense(1) written with candle_nn, in the
//! manner of candle's examples. This is the specification. The fused kernels that train and
//! predict ([`crate::fused`]) are tested against its forward pass and against the gradients
//! candle's autograd takes through it (`Backend::CandleAutograd`), and Keras's own numbers are
//! checked against it (tests/keras_parity.rs).

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::rnn::{LSTM, LSTMConfig, RNN};
use candle_nn::{Linear, VarBuilder, VarMap};

use super::Forecaster;
use crate::config::Loss;
use crate::data::Batch;
use crate::error::{Error, Result};

/// `Sequential([LSTM(H), Dense(1)])` over windows of one feature.
pub(crate) struct LstmDense {
    lstm: LSTM,
    dense: Linear,
}

impl LstmDense {
    pub(crate) fn new(vb: VarBuilder, hidden: usize) -> candle_core::Result<Self> {
        let lstm = candle_nn::rnn::lstm(1, hidden, LSTMConfig::default(), vb.pp("lstm"))?;
        let dense = candle_nn::linear(hidden, 1, vb.pp("dense"))?;
        Ok(Self { lstm, dense })
    }

    /// `x: [batch, n_steps, 1]` to the LSTM's last hidden state `[batch, H]` and the
    /// prediction `[batch, 1]`. The LSTM starts from a zero state, as Keras's does.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let states = self.lstm.seq(x)?;
        let last = states
            .last()
            .expect("a window has at least one step")
            .h()
            .clone();
        let prediction = self.dense.forward(&last)?;
        Ok((last, prediction))
    }
}

/// The loss of predictions `[batch, 1]` against targets `[batch, width]`: each prediction is
/// compared with every value of its target and all is averaged, as Keras does after
/// broadcasting.
pub(crate) fn loss(
    prediction: &Tensor,
    targets: &Tensor,
    kind: Loss,
) -> candle_core::Result<Tensor> {
    let diff = prediction.broadcast_sub(targets)?;
    match kind {
        Loss::Mae => diff.abs()?.mean_all(),
        Loss::Mse => diff.sqr()?.mean_all(),
    }
}

impl Forecaster {
    /// [`weight_tensors`](Self::weight_tensors) as candle tensors.
    pub fn candle_tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.weight_tensors()
            .into_iter()
            .map(|(name, shape, values)| {
                Ok((
                    name.to_owned(),
                    Tensor::from_vec(values, shape, &Device::Cpu)?,
                ))
            })
            .collect()
    }

    /// The layers as candle_nn modules over fresh `Var`s holding the current weights; the
    /// `Var`s come back too, to look up their gradients.
    fn candle_modules(&self) -> Result<(HashMap<String, Var>, LstmDense)> {
        let varmap = VarMap::new();
        let mut vars = HashMap::new();
        {
            let mut data = varmap.data().lock().expect("fresh VarMap");
            for (name, t) in self.candle_tensors()? {
                let var = Var::from_tensor(&t)?;
                data.insert(name.clone(), var.clone());
                vars.insert(name, var);
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        Ok((vars, LstmDense::new(vb, self.config.hidden)?))
    }

    /// Loss and gradients (flat, Keras layout) by candle's autograd through candle_nn's LSTM.
    pub(super) fn candle_loss_and_grads(&self, batch: &Batch) -> Result<(f64, Vec<f32>)> {
        let (vars, model) = self.candle_modules()?;
        let dev = Device::Cpu;
        let (b, n, w) = (batch.size(), batch.n_steps(), batch.target_width());
        let x = Tensor::from_slice(batch.inputs(), (b, n, 1), &dev)?;
        let y = Tensor::from_slice(batch.targets(), (b, w), &dev)?;
        let (_, prediction) = model.forward(&x)?;
        let loss = loss(&prediction, &y, self.config.loss)?;
        let store = loss.backward()?;
        let grad = |name: &str| -> Result<Tensor> {
            Ok(match store.get(vars[name].as_tensor()) {
                Some(g) => g.clone(),
                None => vars[name].as_tensor().zeros_like()?,
            })
        };
        let mut flat = Vec::with_capacity(self.layout.len());
        flat.extend(
            grad("lstm.weight_ih_l0")?
                .t()?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
        flat.extend(
            grad("lstm.weight_hh_l0")?
                .t()?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
        // Keras has one bias; the forecaster folds both candle biases into bias_ih, so the
        // gradient of that single bias is the one to apply.
        flat.extend(grad("lstm.bias_ih_l0")?.to_vec1::<f32>()?);
        flat.extend(grad("dense.weight")?.flatten_all()?.to_vec1::<f32>()?);
        flat.extend(grad("dense.bias")?.to_vec1::<f32>()?);
        Ok((f64::from(loss.to_scalar::<f32>()?), flat))
    }

    /// Outputs of both layers for scaled windows `[N, n_steps]`: the LSTM's last hidden state
    /// `[N, H]` and the Dense output `[N]`, via candle_nn. For checking against Keras.
    pub fn layer_outputs(&self, windows: &[Vec<f64>]) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
        let n = self.config.n_steps;
        let flat: Vec<f32> = windows.iter().flatten().map(|&v| v as f32).collect();
        if windows.iter().any(|w| w.len() != n) {
            return Err(Error::ShapeMismatch {
                what: "input windows".into(),
                expected: format!("{n} values each"),
                got: "windows of another length".into(),
            });
        }
        let (_, model) = self.candle_modules()?;
        let x = Tensor::from_slice(&flat, (windows.len(), n, 1), &Device::Cpu)?;
        let (h, y) = model.forward(&x)?;
        Ok((h.to_vec2::<f32>()?, y.flatten_all()?.to_vec1::<f32>()?))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Forecaster, Init, ModelConfig};

    /// Prediction runs on the fused kernels only; this is where they meet the definition.
    #[test]
    fn fused_prediction_matches_the_specification() {
        for (hidden, n_steps, seed) in [(1, 1, 0), (8, 2, 1), (16, 8, 2), (33, 5, 3)] {
            let mut config = ModelConfig::forecasting(n_steps, hidden);
            config.init = Init::Keras { seed };
            let model = Forecaster::new(config).unwrap();
            let windows: Vec<Vec<f64>> = (0..37)
                .map(|w| {
                    (0..n_steps)
                        .map(|i| ((w * 7 + i * 3) % 11) as f64 / 5.0 - 1.0)
                        .collect()
                })
                .collect();
            let fused = model.predict(&windows).unwrap();
            let (_, spec) = model.layer_outputs(&windows).unwrap();
            assert_eq!(fused.len(), spec.len());
            for (i, (f, s)) in fused.iter().zip(&spec).enumerate() {
                assert!(
                    (f - f64::from(*s)).abs() < 1e-5,
                    "LSTM({hidden}), {n_steps} steps, window {i}: fused {f}, spec {s}"
                );
            }
        }
    }
}
