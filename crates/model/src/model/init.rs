//! Initial weights as Keras draws them (Glorot-uniform kernel, orthogonal recurrent kernel,
//! forget-gate bias 1), from this crate's seeded RNG so that one seed gives one model.

use crate::config::Init;
use crate::fused::Layout;
use crate::rng::SeededRng;

pub(super) fn initial_weights(l: Layout, init: Init) -> Vec<f32> {
    let (h, g) = (l.hidden, l.gates());
    let mut p = vec![0.0f32; l.len()];
    match init {
        Init::Keras { seed } => {
            let mut rng = SeededRng::new(seed);
            let glorot = |rng: &mut SeededRng, out: &mut [f32], fan_in: usize, fan_out: usize| {
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
                for v in out {
                    *v = ((rng.uniform() * 2.0 - 1.0) * limit) as f32;
                }
            };
            glorot(&mut rng, &mut p[l.kernel()], l.n_in, g);
            let q = orthogonal(&mut rng, h, g);
            p[l.recurrent()].copy_from_slice(&q);
            p[l.bias()][h..2 * h].fill(1.0);
            glorot(&mut rng, &mut p[l.dense_kernel()], h, 1);
        }
        Init::PyTorch { seed } => {
            let mut rng = SeededRng::new(seed);
            let mut fill = |out: &mut [f32], bound: f64| {
                for v in out {
                    *v = ((rng.uniform() * 2.0 - 1.0) * bound) as f32;
                }
            };
            let k = 1.0 / (h as f64).sqrt();
            fill(&mut p[l.kernel()], k);
            fill(&mut p[l.recurrent()], k);
            // PyTorch has two LSTM biases; their sum is what acts.
            let mut b2 = vec![0.0; g];
            fill(&mut p[l.bias()], k);
            fill(&mut b2, k);
            for (a, b) in p[l.bias()].iter_mut().zip(b2) {
                *a += b;
            }
            fill(&mut p[l.dense_kernel()], k);
            fill(&mut p[l.dense_bias()..], k);
        }
    }
    p
}

/// A `rows x cols` matrix with orthonormal rows or columns (whichever is fewer), as Keras's
/// `Orthogonal` initializer: QR of a normal matrix with the signs of R's diagonal made
/// positive, which is what Gram-Schmidt gives directly.
fn orthogonal(rng: &mut SeededRng, rows: usize, cols: usize) -> Vec<f32> {
    let (tall, short) = (rows.max(cols), rows.min(cols));
    // `short` column vectors of length `tall`.
    let mut q: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..tall).map(|_| rng.normal()).collect())
        .collect();
    for j in 0..short {
        for k in 0..j {
            let dot: f64 = q[j].iter().zip(&q[k]).map(|(a, b)| a * b).sum();
            let (head, tail) = q.split_at_mut(j);
            for (a, b) in tail[0].iter_mut().zip(&head[k]) {
                *a -= dot * b;
            }
        }
        let norm = q[j].iter().map(|a| a * a).sum::<f64>().sqrt();
        for a in &mut q[j] {
            *a /= norm;
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Columns orthonormal when tall, rows orthonormal when wide (Keras transposes).
            out[r * cols + c] = if rows >= cols { q[c][r] } else { q[r][c] } as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Forecaster, ModelConfig};

    #[test]
    fn orthogonal_rows_are_orthonormal() {
        let mut rng = SeededRng::new(3);
        let (h, g) = (8, 32);
        let q = orthogonal(&mut rng, h, g);
        for a in 0..h {
            for b in 0..h {
                let dot: f32 = (0..g).map(|c| q[a * g + c] * q[b * g + c]).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "{a},{b}: {dot}");
            }
        }
    }

    #[test]
    fn keras_init_is_seeded_and_sets_forget_bias() {
        let a = Forecaster::new(ModelConfig::tutorial())
            .unwrap()
            .keras_weights();
        let b = Forecaster::new(ModelConfig::tutorial())
            .unwrap()
            .keras_weights();
        assert_eq!(a, b);
        assert_eq!(&a.bias[8..16], &[1.0; 8]);
        assert!(a.bias[..8].iter().chain(&a.bias[16..]).all(|&v| v == 0.0));
        let limit = (6.0f32 / 33.0).sqrt();
        assert!(a.kernel.iter().all(|v| v.abs() <= limit));
        let mut other = ModelConfig::tutorial();
        other.init = Init::Keras { seed: 1 };
        assert_ne!(Forecaster::new(other).unwrap().keras_weights(), a);
    }
}
