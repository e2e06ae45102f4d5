//! The angular margins on embeddings and class weights: the cosine matrix
//! of the normalized rows, the margin rows, and the backward pass through
//! the normalization.

use ndarray::linalg::general_mat_mul;
use ndarray::{
    Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, CowArray, Ix2, s,
};

use crate::base::loss::Call;
use crate::base::reduction::{Sum, Totals};
use crate::engine::angular::margin::{Perp, target_sin};
use crate::engine::angular::norms::{grad_shift, row_norms, unscale_grad};
use crate::engine::angular::row::MarginRow;
use crate::engine::angular::{EmbeddingsAndLabels, Spec, check_embeddings};
use crate::engine::softmax_rows::GradBeyond;
use crate::numerics::{l2_norm, times_pow2};
use crate::{Float, Result};

/// The rows of `x`, each scaled by a power of two `2^-k_i` (`k_i` the
/// exponent of its largest entry) where its norm leaves `F`'s normal range
/// (beyond `F::MAX`, or subnormal): the direction is the same, the norm
/// fits, and `d loss / d x_i = 2^-k_i d loss / d x'_i`.
/// Returns the (possibly) scaled rows and the `k_i` (empty when no row
/// needs it, the usual case: then `x` is not copied).
fn fit_norms<'a, F: Float>(x: ArrayView2<'a, F>) -> (CowArray<'a, F, Ix2>, Vec<i32>) {
    let out_of_range = |r: ArrayView1<'_, F>| {
        let norm = l2_norm(r.iter().copied());
        let finite = r.iter().all(|v| v.is_finite());
        finite && (norm.is_infinite() || (norm > F::zero() && norm < F::min_positive_value()))
    };
    if !x.rows().into_iter().any(out_of_range) {
        return (CowArray::from(x), Vec::new());
    }
    let mut scaled = x.to_owned();
    let mut shifts = vec![0; x.nrows()];
    for (mut r, k) in scaled.rows_mut().into_iter().zip(&mut shifts) {
        if out_of_range(r.view()) {
            let max = r.iter().fold(0.0_f64, |m, v| m.max(v.as_f64().abs()));
            *k = max.log2().floor() as i32;
            r.mapv_inplace(|v| F::lit(times_pow2(v.as_f64(), -*k)));
        }
    }
    (CowArray::from(scaled), shifts)
}

/// Writes `x_i / norms_i` into `out` (same shape).
fn normalize_into<F: Float>(
    x: &ArrayView2<'_, F>,
    norms: ArrayView1<'_, F>,
    out: &mut ArrayViewMut2<'_, F>,
) {
    for ((mut o, r), &n) in out.rows_mut().into_iter().zip(x.rows()).zip(norms) {
        o.zip_mut_with(&r, |o, &v| *o = v / n);
    }
}

/// Rows of embeddings normalized at a time while accumulating the weight
/// gradient: bounds the scratch without changing the arithmetic.
const BLOCK: usize = 64;

/// The loss on embeddings and class weights, with the gradient for both.
pub(crate) fn run_embeddings<F: Float>(
    spec: &Spec,
    call: Call<'_, '_, '_, F, EmbeddingsAndLabels>,
) -> Result<Totals> {
    let Call {
        input,
        target: labels,
        grad,
        mut per,
    } = call;
    let (n, d, c) = check_embeddings(spec, &input, &labels, grad.as_ref())?;
    let (e, w) = (input.embeddings, input.weight);
    let (e, e_shifts) = fit_norms(e);
    let (w, w_shifts) = fit_norms(w);
    let (e, w) = (e.view(), w.view());
    let ne = row_norms("embeddings", &e)?;
    let nw = row_norms("weight", &w)?;

    // The normalized copies live in the caller's gradient buffers when there
    // are some (so the fused call allocates nothing of the inputs' size) and
    // in scratch otherwise; the arithmetic is the same either way, so
    // `forward` and the fused call return the same value.
    let want_grad = grad.is_some();
    let mut scratch;
    let (mut e_hat, mut w_hat) = match grad {
        Some(g) => (g.embeddings, g.weight),
        None => {
            scratch = (Array2::zeros((n, d)), Array2::zeros((c, d)));
            (scratch.0.view_mut(), scratch.1.view_mut())
        }
    };
    normalize_into(&e, ne.view(), &mut e_hat);
    normalize_into(&w, nw.view(), &mut w_hat);
    let mut cos = Array2::<F>::zeros((n, c));
    general_mat_mul(F::one(), &e_hat, &w_hat.t(), F::zero(), &mut cos);

    let t = grad_shift::<F>(spec, n, 1.0);
    let row = MarginRow::with_grad_shift(spec, n, t);
    let mut c_row = vec![F::zero(); c];
    // sum_j g_ij cos_ij per sample and sum_i g_ij cos_ij per class: the
    // radial parts the normalization removes from the gradients.
    let mut radial_e = Array1::<F>::zeros(n);
    let mut radial_w = Array1::<F>::zeros(c);
    // Per sample, the coefficient of the unit direction of w^_y perpendicular
    // to e^_i (and of e^_i perpendicular to w^_y) in the target's derivative,
    // added after the products below (see `TargetLogit`).
    let mut perp_coef = Array1::<F>::zeros(if want_grad { n } else { 0 });
    let mut sum = Sum::default();
    let beyond = GradBeyond::default();
    for i in 0..n {
        for (dst, &v) in c_row.iter_mut().zip(cos.row(i)) {
            *dst = v;
        }
        let y = labels.class(i);
        let sin = if row.needs_sin() {
            target_sin(e.row(i), ne[i], w.row(y), nw[y])
        } else {
            F::zero()
        };
        // The gradient with respect to the cosines overwrites them: `cos`
        // is contiguous, so its rows are slices.
        let mut cos_row = cos.row_mut(i);
        let g = if want_grad {
            cos_row.as_slice_mut()
        } else {
            None
        };
        let (loss, k) = row.run(&c_row, y, Some(sin), g, &beyond);
        if let Some(p) = per.as_mut() {
            p[i] = F::lit(loss);
        }
        sum.add::<F>(i, loss);
        beyond.report(&mut sum, i);
        if want_grad {
            perp_coef[i] = k;
            let mut acc = F::zero();
            for ((&g, &cv), k) in cos.row(i).iter().zip(&c_row).zip(radial_w.iter_mut()) {
                acc += g * cv;
                *k += g * cv;
            }
            radial_e[i] = acc;
        }
    }
    let totals = Totals {
        sum,
        divisor: n as f64,
        what: "embeddings",
    };
    if !want_grad {
        return Ok(totals);
    }

    // With G = d loss / d cos, e^ = e / |e|, w^ = w / |w|:
    //   d loss / d e_i = (sum_j G_ij w^_j - radial_e_i e^_i) / |e_i|
    //   d loss / d w_j = (sum_i G_ij e^_i - radial_w_j w^_j) / |w_j|
    // e_hat holds e^ and w_hat holds w^; the first product overwrites e^,
    // which is recomputed from e where needed.
    general_mat_mul(F::one(), &cos, &w_hat, F::zero(), &mut e_hat);
    for (((mut g, x), &norm), &r) in e_hat
        .rows_mut()
        .into_iter()
        .zip(e.rows())
        .zip(&ne)
        .zip(&radial_e)
    {
        g.zip_mut_with(&x, |g, &v| *g = (*g - r * (v / norm)) / norm);
    }
    for (mut g, &r) in w_hat.rows_mut().into_iter().zip(&radial_w) {
        g.mapv_inplace(|v| -r * v);
    }
    let rows = BLOCK.min(n);
    let mut block = Array2::<F>::zeros((rows, d));
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let mut b = block.slice_mut(s![..end - start, ..]);
        let e_rows = e.slice(s![start..end, ..]);
        normalize_into(&e_rows, ne.slice(s![start..end]), &mut b);
        general_mat_mul(
            F::one(),
            &cos.slice(s![start..end, ..]).t(),
            &b,
            F::one(),
            &mut w_hat,
        );
    }
    for (mut g, &norm) in w_hat.rows_mut().into_iter().zip(&nw) {
        g.mapv_inplace(|v| v / norm);
    }
    // The `perp / sin` part of each target's derivative: k_i times the unit
    // residuals over the norms,
    //   (w^_y - c e^_i) / |w^_y - c e^_i| / |e_i|  into d loss / d e_i,
    //   (e^_i - c w^_y) / |e^_i - c w^_y| / |w_y|  into d loss / d w_y,
    // with the unit directions computed as such (never 1 / sin times a
    // residual of rounding size).
    for (i, &k) in perp_coef.iter().enumerate() {
        if k == F::zero() {
            continue;
        }
        let y = labels.class(i);
        let add = |mut g: ArrayViewMut1<'_, F>, p: Perp<'_, F>, norm_row: F| {
            let len = p.norm();
            if len > F::zero() {
                let f = k / len;
                for (g, r) in g.iter_mut().zip(p.entries()) {
                    *g += f * r / norm_row;
                }
            }
        };
        add(
            e_hat.row_mut(i),
            Perp::new(e.row(i), ne[i], w.row(y), nw[y]),
            ne[i],
        );
        add(
            w_hat.row_mut(y),
            Perp::new(w.row(y), nw[y], e.row(i), ne[i]),
            nw[y],
        );
    }
    unscale_grad("embeddings", &mut e_hat, &e_shifts, t)?;
    unscale_grad("weight", &mut w_hat, &w_shifts, t)?;
    Ok(totals)
}
