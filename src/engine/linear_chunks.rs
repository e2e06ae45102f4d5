//! The loop of the fused classifier heads: the logits of a linear layer,
//! `hidden W^T + b`, a chunk of tokens at a time, turned into their
//! gradient by the head's loss, and the three products that carry it back
//! to the hidden states, the weight and the bias.
//!
//! One `(rows, V)` buffer is reused for every chunk: the head's loss reads
//! the chunk's logits from it and writes `dL/dZ` over them, so the working
//! set beyond the inputs and the gradients is that buffer (and `gemm`'s
//! packing), whatever `N`. The products run on the current rayon pool's
//! threads (`numerics::matmul`), whose results do not depend on the thread
//! count.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, s};

use crate::base::reduction::Sum;
use crate::engine::parallel::map_blocks;
use crate::numerics::matmul::{Threads, mat_mul};
use crate::{Float, Result};

/// A linear layer's input and parameters: `hidden (N, D)`, `weight (V, D)`,
/// `bias (V)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Linear<'a, F> {
    pub hidden: ArrayView2<'a, F>,
    pub weight: ArrayView2<'a, F>,
    pub bias: Option<ArrayView1<'a, F>>,
}

/// Where the products write: `d hidden (N, D)`, `d weight (V, D)`, and
/// `d bias (V)` if wanted. All three are overwritten.
pub(crate) struct LinearGradViews<'s, 'g, F> {
    pub hidden: &'s mut ArrayViewMut2<'g, F>,
    pub weight: &'s mut ArrayViewMut2<'g, F>,
    pub bias: Option<&'s mut ArrayViewMut1<'g, F>>,
}

/// Runs the chunks of `rows` tokens (the last one shorter). For each, the
/// logits `Z_c = H_c W^T + b` are computed into the buffer and handed to
/// `chunk(start, z)`, which returns the chunk's [`Sum`] (its samples
/// numbered from 0) and, when `grad` is given, leaves `dL/dZ_c` in `z`;
/// then `dH_c = scale G W`, `dW += scale G^T H_c`, `db += scale sum_i G_i`.
/// The chunks' sums are added in order. `chunk` may stop the loop with an
/// error.
pub(crate) fn linear_chunks<F: Float>(
    linear: Linear<'_, F>,
    rows: usize,
    mut grad: Option<LinearGradViews<'_, '_, F>>,
    scale: F,
    mut chunk: impl FnMut(usize, &mut ArrayViewMut2<'_, F>) -> Result<Sum>,
) -> Result<Sum> {
    let Linear {
        hidden,
        weight,
        bias,
    } = linear;
    let n = hidden.nrows();
    let rows = rows.clamp(1, n.max(1));
    let mut buffer = Array2::<F>::zeros((rows, weight.nrows()));
    let mut sum = Sum::default();
    for start in (0..n).step_by(rows) {
        let end = (start + rows).min(n);
        let h = hidden.slice(s![start..end, ..]);
        let mut z = buffer.slice_mut(s![..end - start, ..]);
        logits(h, weight, bias, &mut z);
        let totals = chunk(start, &mut z)?;
        sum = sum.then(totals.shifted(start));
        if let Some(g) = grad.as_mut() {
            let mut dh = g.hidden.slice_mut(s![start..end, ..]);
            hidden_grad(z.view(), weight, scale, &mut dh);
            let first = start == 0;
            weight_and_bias_grad(z.view(), h, scale, first, g.weight, g.bias.as_deref_mut());
        }
    }
    Ok(sum)
}

/// Classes per block of the products that split the classes: `gemm` packs
/// its whole right-hand side for a product, so `d W += G^T H_c` over all
/// `V` classes at once packs a `chunk x V` copy (33 MiB at `V = 128,256`)
/// and ran at 48-64 GFLOP/s where blocks of 2,048 classes ran at 67-81
/// (one thread, `T = 114`, `D = 512`). Blocks are also the unit of work of
/// the threads.
const CLASS_BLOCK: usize = 2048;

/// The column blocks `0..V` of `CLASS_BLOCK` classes.
fn class_blocks(v: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..v)
        .step_by(CLASS_BLOCK)
        .map(move |c| c..(c + CLASS_BLOCK).min(v))
}

/// `z = h W^T + b`, by blocks of classes in parallel (each block's columns
/// of `z` are its own, so the result does not depend on the threads).
fn logits<F: Float>(
    h: ArrayView2<'_, F>,
    weight: ArrayView2<'_, F>,
    bias: Option<ArrayView1<'_, F>>,
    z: &mut ArrayViewMut2<'_, F>,
) {
    let v = weight.nrows();
    let blocks: Vec<_> = z
        .axis_chunks_iter_mut(Axis(1), CLASS_BLOCK)
        .zip(class_blocks(v))
        .collect();
    map_blocks(blocks, h.nrows() * v, |(mut zb, classes)| {
        // `gemm` computes this block as `W_b h^T` into a `(classes, T)`
        // tile, then transposed in cache: 85-93 GFLOP/s with AVX-512 where
        // `h W_b^T` straight into the row-major block ran at 51-74 (one
        // core, T = 114 and 458).
        let tile_classes = (LOGITS_TILE_BYTES / (h.nrows() * std::mem::size_of::<F>())).max(8);
        let mut tile = Array2::<F>::zeros((tile_classes.min(classes.len()), h.nrows()));
        for (k, mut zt) in zb.axis_chunks_iter_mut(Axis(1), tile_classes).enumerate() {
            let first = classes.start + k * tile_classes;
            let rows = first..first + zt.ncols();
            let mut t = tile.slice_mut(s![..zt.ncols(), ..]);
            let wt = weight.slice(s![rows.clone(), ..]);
            mat_mul(F::one(), wt, h.t(), F::zero(), &mut t, Threads::One);
            zt.assign(&t.t());
            if let Some(b) = &bias {
                zt += &b.slice(s![rows]);
            }
        }
    });
}

/// Bytes of the transposed tile of logits one thread computes at a time.
const LOGITS_TILE_BYTES: usize = 2 << 20;

/// `dW = (first ? 0 : dW) + scale G^T h` and `db` likewise with the column
/// sums of `G`, by blocks of classes in parallel (each block owns its rows
/// of `dW` and entries of `db`).
fn weight_and_bias_grad<F: Float>(
    g: ArrayView2<'_, F>,
    h: ArrayView2<'_, F>,
    scale: F,
    first: bool,
    dw: &mut ArrayViewMut2<'_, F>,
    db: Option<&mut ArrayViewMut1<'_, F>>,
) {
    let v = g.ncols();
    let beta = if first { F::zero() } else { F::one() };
    let mut dbs: Vec<Option<ArrayViewMut1<'_, F>>> = match db {
        Some(db) => db
            .axis_chunks_iter_mut(Axis(0), CLASS_BLOCK)
            .map(Some)
            .collect(),
        None => Vec::new(),
    };
    dbs.resize_with(v.div_ceil(CLASS_BLOCK), || None);
    let blocks: Vec<_> = dw
        .axis_chunks_iter_mut(Axis(0), CLASS_BLOCK)
        .zip(dbs)
        .zip(class_blocks(v))
        .collect();
    map_blocks(blocks, g.len(), |((mut dwb, dbb), classes)| {
        let gb = g.slice(s![.., classes]);
        mat_mul(scale, gb.t(), h, beta, &mut dwb, Threads::One);
        if let Some(mut dbb) = dbb {
            let column_sums = gb.sum_axis(Axis(0));
            if first {
                dbb.fill(F::zero());
            }
            dbb.scaled_add(scale, &column_sums);
        }
    });
}

/// Bytes of the partial products of [`hidden_grad`] beyond the first.
const HIDDEN_PARTS_BYTES: usize = 4 << 20;

/// `dh = scale G W`, the sum over the classes split into a few parts
/// computed in parallel, each into its own `(T, D)` buffer (the first into
/// `dh`), then added in order. The parts depend on the shape only (2, 4 or
/// 8, the extra buffers at most 4 MiB unless 2 parts need more), so the
/// result does not depend on the threads. `gemm`'s own threads split the small `(T, D)` output poorly:
/// 1.2x on two threads for `d H` at `T = 114`, `D = 512` (against 1.5-1.9x
/// for the other products).
fn hidden_grad<F: Float>(
    g: ArrayView2<'_, F>,
    weight: ArrayView2<'_, F>,
    scale: F,
    dh: &mut ArrayViewMut2<'_, F>,
) {
    let (v, part_bytes) = (g.ncols(), dh.len() * std::mem::size_of::<F>());
    // 2, 4 or 8 parts (even, for two threads), fewer for few classes.
    let mut parts = 8;
    while parts > 2 && (parts - 1) * part_bytes > HIDDEN_PARTS_BYTES {
        parts /= 2;
    }
    let parts = parts.min(v.div_ceil(CLASS_BLOCK));
    if parts <= 1 {
        mat_mul(scale, g, weight, F::zero(), dh, Threads::Pool);
        return;
    }
    let per_part = v.div_ceil(parts);
    let ranges: Vec<_> = (0..v)
        .step_by(per_part)
        .map(|c| c..(c + per_part).min(v))
        .collect();
    let mut rest: Vec<Array2<F>> = (1..ranges.len())
        .map(|_| Array2::zeros(dh.raw_dim()))
        .collect();
    let mut outputs: Vec<ArrayViewMut2<'_, F>> = vec![dh.view_mut()];
    outputs.extend(rest.iter_mut().map(|p| p.view_mut()));
    let jobs: Vec<_> = outputs.into_iter().zip(ranges).collect();
    map_blocks(jobs, g.len(), |(mut out, classes)| {
        let (gp, wp) = (
            g.slice(s![.., classes.clone()]),
            weight.slice(s![classes, ..]),
        );
        mat_mul(scale, gp, wp, F::zero(), &mut out, Threads::One);
    });
    for part in &rest {
        *dh += part;
    }
}
