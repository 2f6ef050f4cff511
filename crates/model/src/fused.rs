//! The training hot path: LSTM(H) + Dense(1) forward and backward over flat `f32` buffers.
//!
//! candle's autograd builds a graph of small tensors per timestep (chunk, sigmoid, mul, ...),
//! which costs far more than the arithmetic at these sizes. Here each timestep is one fused
//! GEMM `[B,H] x [H,4H]` (the same `gemm` crate candle calls) plus one pass over the gates,
//! into buffers allocated once per batch shape. The weight gradients of all timesteps are
//! single large GEMMs after the sequential part. Results are checked against Keras and
//! against candle's autograd in the tests.
//!
//! Layout follows Keras (kernel `[in, 4H]`, recurrent kernel `[H, 4H]`, gates i, f, c, o),
//! so the fixtures compare directly; `model/spec.rs` converts to candle's `[4H, in]` layout.

use gemm::Parallelism;

/// Offsets of each tensor inside one flat parameter buffer, so Adam is one loop over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub n_in: usize,
    pub hidden: usize,
}

impl Layout {
    pub fn gates(&self) -> usize {
        4 * self.hidden
    }
    pub fn kernel(&self) -> std::ops::Range<usize> {
        0..self.n_in * self.gates()
    }
    pub fn recurrent(&self) -> std::ops::Range<usize> {
        let s = self.kernel().end;
        s..s + self.hidden * self.gates()
    }
    pub fn bias(&self) -> std::ops::Range<usize> {
        let s = self.recurrent().end;
        s..s + self.gates()
    }
    pub fn dense_kernel(&self) -> std::ops::Range<usize> {
        let s = self.bias().end;
        s..s + self.hidden
    }
    pub fn dense_bias(&self) -> usize {
        self.dense_kernel().end
    }
    pub fn len(&self) -> usize {
        self.dense_bias() + 1
    }
}

/// Per-batch-shape scratch space, reused across steps so training allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    batch: usize,
    steps: usize,
    /// Inputs time-major `[T, B, in]`.
    xs: Vec<f32>,
    /// Pre-activations, then activations, per timestep `[T, B, 4H]`.
    acts: Vec<f32>,
    /// Cell states `[T+1, B, H]`, entry 0 the zero initial state.
    cs: Vec<f32>,
    /// Hidden states `[T+1, B, H]`, entry 0 the zero initial state.
    hs: Vec<f32>,
    /// `tanh(c_t)` `[T, B, H]`, kept for the backward pass.
    tcs: Vec<f32>,
    /// Dense outputs `[B]`.
    pub out: Vec<f32>,
    /// Gradient w.r.t. pre-activations `[T, B, 4H]`.
    dacts: Vec<f32>,
    dh: Vec<f32>,
    dc: Vec<f32>,
    /// Recurrent kernel transposed `[4H, H]`, so `dh = dG R^T` reads a contiguous matrix.
    rec_t: Vec<f32>,
}

impl Workspace {
    fn ensure(&mut self, l: Layout, batch: usize, steps: usize) {
        if self.batch == batch && self.steps == steps && self.rec_t.len() == l.hidden * l.gates() {
            return;
        }
        let (h, g) = (l.hidden, l.gates());
        self.batch = batch;
        self.steps = steps;
        self.xs = vec![0.0; steps * batch * l.n_in];
        self.acts = vec![0.0; steps * batch * g];
        self.cs = vec![0.0; (steps + 1) * batch * h];
        self.hs = vec![0.0; (steps + 1) * batch * h];
        self.tcs = vec![0.0; steps * batch * h];
        self.out = vec![0.0; batch];
        self.dacts = vec![0.0; steps * batch * g];
        self.dh = vec![0.0; batch * h];
        self.dc = vec![0.0; batch * h];
        self.rec_t = vec![0.0; h * g];
    }
}

/// `dst[m×n] = (accumulate ? dst : 0) + lhs[m×k] · rhs[k×n]`, each operand given by its row
/// and column strides. Bounds are checked here so the unsafe call cannot read out of range.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, n, dst_rs, 1) < dst.len());
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(last(m, k, lhs_rs, lhs_cs) < lhs.len());
    assert!(last(k, n, rhs_rs, rhs_cs) < rhs.len());
    // SAFETY: the asserts above keep every index gemm touches inside the three slices, and
    // `dst` is borrowed mutably so it cannot alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Forward pass for a batch of `[B, T]` input windows (batch-major, one feature).
/// Leaves the predictions in `ws.out` and every state the backward pass needs in `ws`.
pub(crate) fn forward(
    l: Layout,
    params: &[f32],
    inputs: &[f32],
    batch: usize,
    steps: usize,
    ws: &mut Workspace,
) {
    debug_assert_eq!(l.n_in, 1);
    debug_assert_eq!(inputs.len(), batch * steps);
    ws.ensure(l, batch, steps);
    let (h, g) = (l.hidden, l.gates());
    let kernel = &params[l.kernel()];
    let recurrent = &params[l.recurrent()];
    let bias = &params[l.bias()];

    for t in 0..steps {
        for b in 0..batch {
            ws.xs[t * batch + b] = inputs[b * steps + t];
        }
    }
    for t in 0..steps {
        let acts = &mut ws.acts[t * batch * g..(t + 1) * batch * g];
        // With one input feature the input projection is a scaled copy of the kernel row.
        for b in 0..batch {
            let x = ws.xs[t * batch + b];
            for ((a, &k), &bi) in acts[b * g..(b + 1) * g].iter_mut().zip(kernel).zip(bias) {
                *a = x * k + bi;
            }
        }
        if t > 0 {
            let h_prev = &ws.hs[t * batch * h..(t + 1) * batch * h];
            matmul(
                (batch, g, h),
                acts,
                g,
                true,
                h_prev,
                (h, 1),
                recurrent,
                (g, 1),
            );
        }
        let (c_prev, c_rest) = ws.cs[t * batch * h..].split_at_mut(batch * h);
        cell_forward(
            h,
            acts,
            c_prev,
            &mut c_rest[..batch * h],
            &mut ws.tcs[t * batch * h..(t + 1) * batch * h],
            &mut ws.hs[(t + 1) * batch * h..(t + 2) * batch * h],
        );
    }
    let h_last = &ws.hs[steps * batch * h..];
    let w = &params[l.dense_kernel()];
    let b_out = params[l.dense_bias()];
    for (b, out) in ws.out.iter_mut().enumerate() {
        *out = h_last[b * h..(b + 1) * h]
            .iter()
            .zip(w)
            .map(|(a, b)| a * b)
            .sum::<f32>()
            + b_out;
    }
}

/// Backward pass after [`forward`] on the same workspace: `d_out[b]` is dLoss/dprediction.
/// Overwrites `grads` (same layout as the parameters).
pub(crate) fn backward(
    l: Layout,
    params: &[f32],
    d_out: &[f32],
    ws: &mut Workspace,
    grads: &mut [f32],
) {
    let (batch, steps) = (ws.batch, ws.steps);
    let (h, g) = (l.hidden, l.gates());
    debug_assert_eq!(d_out.len(), batch);
    debug_assert_eq!(grads.len(), l.len());

    let recurrent = &params[l.recurrent()];
    for r in 0..h {
        for c in 0..g {
            ws.rec_t[c * h + r] = recurrent[r * g + c];
        }
    }

    let w = &params[l.dense_kernel()];
    let h_last = &ws.hs[steps * batch * h..];
    let gw = &mut grads[l.dense_kernel()];
    gw.fill(0.0);
    let mut gb = 0.0f32;
    for (b, &dy) in d_out.iter().enumerate() {
        gb += dy;
        for ((gwj, &hj), (dhj, &wj)) in gw
            .iter_mut()
            .zip(&h_last[b * h..(b + 1) * h])
            .zip(ws.dh[b * h..(b + 1) * h].iter_mut().zip(w))
        {
            *gwj += dy * hj;
            *dhj = dy * wj;
        }
    }
    grads[l.dense_bias()] = gb;
    ws.dc.fill(0.0);

    for t in (0..steps).rev() {
        let dacts = &mut ws.dacts[t * batch * g..(t + 1) * batch * g];
        cell_backward(
            h,
            &ws.acts[t * batch * g..(t + 1) * batch * g],
            &ws.cs[t * batch * h..(t + 1) * batch * h],
            &ws.tcs[t * batch * h..(t + 1) * batch * h],
            &ws.dh,
            &mut ws.dc,
            dacts,
        );
        if t > 0 {
            matmul(
                (batch, h, g),
                &mut ws.dh,
                h,
                false,
                dacts,
                (g, 1),
                &ws.rec_t,
                (h, 1),
            );
        }
    }

    let rows = steps * batch;
    // dK = X^T dG and dR = H_prev^T dG over all timesteps at once: one large GEMM each
    // instead of T small ones. h_0 is zero, so timestep 0 adds nothing to dR.
    matmul(
        (l.n_in, g, rows),
        &mut grads[l.kernel()],
        g,
        false,
        &ws.xs,
        (1, l.n_in),
        &ws.dacts,
        (g, 1),
    );
    matmul(
        (h, g, rows - batch),
        &mut grads[l.recurrent()],
        g,
        false,
        &ws.hs[batch * h..steps * batch * h],
        (1, h),
        &ws.dacts[batch * g..],
        (g, 1),
    );
    let gbias = &mut grads[l.bias()];
    gbias.fill(0.0);
    for row in ws.dacts.chunks_exact(g) {
        for (a, &d) in gbias.iter_mut().zip(row) {
            *a += d;
        }
    }
}

/// Keras's Adam, step for step: `alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)`,
/// `m += (g - m)(1 - b1)`, `v += (g² - v)(1 - b2)`, `p -= alpha * m / (sqrt(v) + eps)`.
/// The epsilon sits outside the bias correction, unlike the textbook form; that changes the
/// early steps noticeably when gradients are small.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    pub learning_rate: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub iterations: u64,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    pub fn keras_default(n: usize, learning_rate: f32) -> Self {
        Self {
            learning_rate,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            iterations: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        self.iterations += 1;
        let t = self.iterations as f32;
        let alpha =
            self.learning_rate * (1.0 - self.beta_2.powf(t)).sqrt() / (1.0 - self.beta_1.powf(t));
        let (b1c, b2c, eps) = (1.0 - self.beta_1, 1.0 - self.beta_2, self.epsilon);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m += (g - *m) * b1c;
            *v += (g * g - *v) * b2c;
            *p -= *m * alpha / (v.sqrt() + eps);
        }
    }
}

// ---- element-wise gate math ------------------------------------------------------------------
//
// These loops are written branch-free so LLVM vectorises them; on x86-64 with AVX2+FMA they are
// compiled a second time for 8 lanes and picked at run time, since the crate is built for the
// baseline target.

fn cell_forward(
    h: usize,
    acts: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h_out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
        unsafe { cell_forward_avx2(h, acts, c_prev, c, tc, h_out) };
        return;
    }
    cell_forward_body::<Separate>(h, acts, c_prev, c, tc, h_out)
}

fn cell_backward(
    h: usize,
    acts: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dacts: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
        unsafe { cell_backward_avx2(h, acts, c_prev, tc, dh, dc, dacts) };
        return;
    }
    cell_backward_body::<Separate>(h, acts, c_prev, tc, dh, dc, dacts)
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_forward_avx2(
    h: usize,
    acts: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h_out: &mut [f32],
) {
    cell_forward_body::<Fused>(h, acts, c_prev, c, tc, h_out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_backward_avx2(
    h: usize,
    acts: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dacts: &mut [f32],
) {
    cell_backward_body::<Fused>(h, acts, c_prev, tc, dh, dc, dacts)
}

#[inline(always)]
fn cell_forward_body<M: MulAdd>(
    h: usize,
    acts: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h_out: &mut [f32],
) {
    let g = 4 * h;
    for (b, row) in acts.chunks_exact_mut(g).enumerate() {
        let (ifg, o) = row.split_at_mut(3 * h);
        let (i_f, gg) = ifg.split_at_mut(2 * h);
        for a in i_f.iter_mut() {
            *a = sigmoid::<M>(*a);
        }
        for a in gg.iter_mut() {
            *a = tanh::<M>(*a);
        }
        for a in o.iter_mut() {
            *a = sigmoid::<M>(*a);
        }
        let (i, f) = i_f.split_at(h);
        let r = b * h..(b + 1) * h;
        for (((((&i, &f), &g), &o), &cp), ((c, tc), hv)) in i
            .iter()
            .zip(f)
            .zip(gg.iter())
            .zip(o.iter())
            .zip(&c_prev[r.clone()])
            .zip(
                c[r.clone()]
                    .iter_mut()
                    .zip(tc[r.clone()].iter_mut())
                    .zip(h_out[r].iter_mut()),
            )
        {
            let cn = M::mul_add(f, cp, i * g);
            let t = tanh::<M>(cn);
            *c = cn;
            *tc = t;
            *hv = o * t;
        }
    }
}

#[inline(always)]
fn cell_backward_body<M: MulAdd>(
    h: usize,
    acts: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dacts: &mut [f32],
) {
    let g = 4 * h;
    for (b, (row, drow)) in acts
        .chunks_exact(g)
        .zip(dacts.chunks_exact_mut(g))
        .enumerate()
    {
        let r = b * h..(b + 1) * h;
        let (d_if, d_go) = drow.split_at_mut(2 * h);
        let (di, df) = d_if.split_at_mut(h);
        let (dg, d_o) = d_go.split_at_mut(h);
        let (i, rest) = row.split_at(h);
        let (f, rest) = rest.split_at(h);
        let (gg, o) = rest.split_at(h);
        let (cp, t, dh, dc) = (
            &c_prev[r.clone()],
            &tc[r.clone()],
            &dh[r.clone()],
            &mut dc[r],
        );
        // Equal lengths let LLVM drop the bounds checks and vectorise the loop.
        assert!(o.len() == h && cp.len() == h && t.len() == h && dh.len() == h && dc.len() == h);
        assert!(di.len() == h && df.len() == h && dg.len() == h && d_o.len() == h);
        for j in 0..h {
            let (i, f, gv, o, t) = (i[j], f[j], gg[j], o[j], t[j]);
            let dcj = M::mul_add(dh[j] * o, 1.0 - t * t, dc[j]);
            di[j] = dcj * gv * i * (1.0 - i);
            df[j] = dcj * cp[j] * f * (1.0 - f);
            dg[j] = dcj * i * (1.0 - gv * gv);
            d_o[j] = dh[j] * t * o * (1.0 - o);
            dc[j] = dcj * f;
        }
    }
}

/// `a * b + c`, fused into one instruction where the CPU has FMA. Rust never contracts
/// `a * b + c` by itself, and `f32::mul_add` without FMA hardware is a slow libm call, so the
/// element-wise code is generic over this and instantiated once per CPU level.
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

struct Separate;
impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// `e^x` to about 1 ulp (Cephes `expf`), branch-free so it vectorises. NaN stays NaN, so a
/// diverging model is still caught by the loss check.
#[inline(always)]
fn exp<M: MulAdd>(x: f32) -> f32 {
    // Keeps 2^n finite; f32::clamp passes NaN through.
    let x = x.clamp(-87.0, 88.0);
    // Adding 1.5 * 2^23 rounds to an integer that then sits in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let t = M::mul_add(x, std::f32::consts::LOG2_E, SHIFTER);
    let n = t - SHIFTER;
    // ln 2 split in two so n * ln2 stays exact (Cody-Waite).
    let r = M::mul_add(n, 2.121_944_4e-4, M::mul_add(n, -0.693_359_4, x));
    let mut p = 1.987_569_1e-4;
    for k in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = M::mul_add(p, r, k);
    }
    let p = M::mul_add(p, r * r, r) + 1.0;
    let n_int = t.to_bits() as i32 - SHIFTER.to_bits() as i32;
    p * f32::from_bits(((n_int + 127) << 23) as u32)
}

#[inline(always)]
fn sigmoid<M: MulAdd>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<M>(-x))
}

#[inline(always)]
fn tanh<M: MulAdd>(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp::<M>(2.0 * x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_activations<M: MulAdd>() {
        let mut worst = (0.0f32, 0.0f32, 0.0f32);
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            let e = (exp::<M>(x) - x.exp()).abs() / x.exp();
            let s = (sigmoid::<M>(x) - 1.0 / (1.0 + (-x).exp())).abs();
            let t = (tanh::<M>(x) - x.tanh()).abs();
            worst = (worst.0.max(e), worst.1.max(s), worst.2.max(t));
        }
        assert!(
            worst.0 < 5e-7 && worst.1 < 2e-7 && worst.2 < 3e-7,
            "{worst:?}"
        );
        assert!(sigmoid::<M>(f32::NAN).is_nan() && tanh::<M>(f32::NAN).is_nan());
        assert!(sigmoid::<M>(-1000.0) >= 0.0 && sigmoid::<M>(1000.0) == 1.0);
        assert!((tanh::<M>(1000.0) - 1.0).abs() < 1e-7 && (tanh::<M>(-1000.0) + 1.0).abs() < 1e-7);
    }

    #[test]
    fn activations_match_std() {
        check_activations::<Separate>();
        check_activations::<Fused>();
    }
}
