//! The transposition of a row-major matrix, for the column path's blocks
//! of rows (`(rows, C)` logits with few classes run down their columns).
//!
//! At the AVX-512 level, `f32` matrices go through registers a tile of
//! 16 x 16 at a time: sixteen masked loads of the rows' stretches, the
//! tile transposed by 64 lane shuffles (two rounds of unpacks within
//! 128-bit lanes, two of 128-bit lane shuffles), and sixteen masked
//! stores of its columns; at AVX2 a tile of 8 x 8 the same way (24
//! shuffles). A tile at an edge is masked, so every shape runs the same
//! way and nothing is read or written outside the matrix. `f64`, and the
//! portable level, take the scalar form, eight rows at a time. A
//! transposition moves values and never rounds, so every level gives the
//! same result.
//!
//! The column path transposes each block of rows in and its gradient
//! back out: in the scalar form that was 39% of a cross-entropy 128 x 10
//! call's samples on a Zen 4 VM (one thread, perf), 21% with the tiles.

use crate::Float;

/// Writes the `(rows, cols)` row-major matrix `from` into `to` as
/// `(cols, rows)`. Both slices hold `rows * cols` values.
pub(crate) fn transpose<F: Float>(from: &[F], to: &mut [F], rows: usize, cols: usize) {
    assert!(
        from.len() == rows * cols && to.len() == rows * cols,
        "transpose of a {rows} x {cols} matrix from {} into {} values",
        from.len(),
        to.len()
    );
    if from.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use crate::numerics::simd::{SimdLevel, simd_level};
        use std::any::TypeId;
        let level = simd_level();
        if level != SimdLevel::Portable && TypeId::of::<F>() == TypeId::of::<f32>() {
            // SAFETY: `F` is `f32`, so the slices are `f32` slices of
            // their own lengths.
            let (from, to) = unsafe {
                (
                    std::slice::from_raw_parts(from.as_ptr().cast::<f32>(), from.len()),
                    std::slice::from_raw_parts_mut(to.as_mut_ptr().cast::<f32>(), to.len()),
                )
            };
            // SAFETY: `simd_level` reports a level only where the CPU has
            // its instructions (AVX-512F; AVX2).
            unsafe {
                if level == SimdLevel::Avx512 {
                    avx512::transpose_f32(from, to, rows, cols);
                } else {
                    avx2::transpose_f32(from, to, rows, cols);
                }
            }
            return;
        }
    }
    transpose_by_rows(from, to, rows, cols);
}

/// [`transpose`] eight rows of `from` at a time: each output run of eight
/// is one store (a row at a time was 6 instructions an element).
fn transpose_by_rows<F: Copy>(from: &[F], to: &mut [F], rows: usize, cols: usize) {
    const GROUP: usize = 8;
    if cols == 0 {
        return;
    }
    let whole = rows - rows % GROUP;
    for (g, block) in from[..whole * cols].chunks_exact(GROUP * cols).enumerate() {
        let r: [&[F]; GROUP] = std::array::from_fn(|i| &block[i * cols..(i + 1) * cols]);
        let at = g * GROUP;
        for (k, column) in to.chunks_exact_mut(rows).enumerate() {
            column[at..at + GROUP]
                .copy_from_slice(&std::array::from_fn::<F, GROUP, _>(|i| r[i][k]));
        }
    }
    for i in whole..rows {
        for (k, &v) in from[i * cols..(i + 1) * cols].iter().enumerate() {
            to[k * rows + i] = v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_castpd_ps, _mm512_castps_pd, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
        _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_unpackhi_pd, _mm512_unpackhi_ps,
        _mm512_unpacklo_pd, _mm512_unpacklo_ps,
    };

    const TILE: usize = 16;

    /// The first `n` (at most 16) lanes.
    fn mask(n: usize) -> u16 {
        if n >= TILE { u16::MAX } else { (1 << n) - 1 }
    }

    /// The 16 x 16 tile `r` (row `i` in `r[i]`) transposed: lane `i` of
    /// the result's `j` is lane `j` of `r[i]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose_tile(r: [__m512; TILE]) -> [__m512; TILE] {
        // Rows a, b, c, ... (r[0], r[1], ...); lane j of a is a_j.
        // Pairs of rows interleaved within 128-bit lanes:
        // lo(a, b) = a0 b0 a1 b1 | a4 b4 a5 b5 | a8 .. | a12 ..
        let mut t = [_mm512_setzero_ps(); TILE];
        for k in 0..TILE / 2 {
            t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
        }
        // Pairs of pairs: a0 b0 c0 d0 | a4 .. d4 | a8 .. | a12 .., then
        // the columns 1, 2, 3 (+ 4, 8, 12) of the same four rows.
        let mut u = [_mm512_setzero_ps(); TILE];
        for q in 0..TILE / 4 {
            let (lo, hi) = (_mm512_castps_pd(t[4 * q]), _mm512_castps_pd(t[4 * q + 2]));
            let (lo2, hi2) = (
                _mm512_castps_pd(t[4 * q + 1]),
                _mm512_castps_pd(t[4 * q + 3]),
            );
            u[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
            u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
            u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo2, hi2));
            u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo2, hi2));
        }
        // u[4q + c] holds rows 4q..4q+4 at the columns c, c + 4, c + 8,
        // c + 12 (a 128-bit lane each). Two rounds of 128-bit lane
        // shuffles gather a column's four lanes from the four quads.
        let mut v = [_mm512_setzero_ps(); TILE];
        for c in 0..4 {
            // Quads 0 and 1 (rows 0-7), then 2 and 3 (rows 8-15): columns
            // c and c + 8 (lanes 0 and 2), c + 4 and c + 12 (1 and 3).
            v[c] = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
            v[4 + c] = _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]);
            v[8 + c] = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
            v[12 + c] = _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]);
        }
        let mut out = [_mm512_setzero_ps(); TILE];
        for c in 0..4 {
            out[c] = _mm512_shuffle_f32x4::<0x88>(v[c], v[8 + c]);
            out[c + 8] = _mm512_shuffle_f32x4::<0xdd>(v[c], v[8 + c]);
            out[c + 4] = _mm512_shuffle_f32x4::<0x88>(v[4 + c], v[12 + c]);
            out[c + 12] = _mm512_shuffle_f32x4::<0xdd>(v[4 + c], v[12 + c]);
        }
        out
    }

    /// [`super::transpose`] for `f32`, a tile of up to 16 x 16 at a time.
    /// Every tile runs all sixteen loads and stores, those past the
    /// matrix's edge with an empty mask: with loops of a fixed count the
    /// tile stays in registers (counted loops kept it on the stack).
    #[target_feature(enable = "avx512f")]
    pub(super) fn transpose_f32(from: &[f32], to: &mut [f32], rows: usize, cols: usize) {
        for r0 in (0..rows).step_by(TILE) {
            let nr = (rows - r0).min(TILE);
            for c0 in (0..cols).step_by(TILE) {
                let nc = (cols - c0).min(TILE);
                let r: [__m512; TILE] = std::array::from_fn(|i| {
                    let m = if i < nr { mask(nc) } else { 0 };
                    let p = from.as_ptr().wrapping_add((r0 + i) * cols + c0);
                    // SAFETY: the lanes of `m` (`c0..c0 + nc` of row
                    // `r0 + i < rows`) are in `from`; a lane outside `m`
                    // is not read and cannot fault (a row past the edge
                    // has an empty mask, its address formed by a wrapping
                    // addition, never dereferenced).
                    unsafe { _mm512_maskz_loadu_ps(m, p) }
                });
                let t = transpose_tile(r);
                for (j, v) in t.into_iter().enumerate() {
                    let m = if j < nc { mask(nr) } else { 0 };
                    let p = to.as_mut_ptr().wrapping_add((c0 + j) * rows + r0);
                    // SAFETY: as for the loads, in `to` as `(cols, rows)`.
                    unsafe { _mm512_mask_storeu_ps(p, m, v) };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_loadu_si256, _mm256_maskload_ps, _mm256_maskstore_ps,
        _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };

    const TILE: usize = 8;

    /// Eight lanes of -1 then eight of 0: from offset `8 - n`, the mask of
    /// the first `n` lanes (a lane is on when its sign bit is set).
    static MASKS: [i32; 2 * TILE] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    /// The first `n` (at most 8) lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mask(n: usize) -> __m256i {
        // SAFETY: `TILE - n.min(TILE) + 8 <= 16` values of `MASKS`.
        unsafe { _mm256_loadu_si256(MASKS[TILE - n.min(TILE)..].as_ptr().cast()) }
    }

    /// The 8 x 8 tile `r` transposed (as [`super::avx512`]'s, in three
    /// rounds: 24 shuffles).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose_tile(r: [__m256; TILE]) -> [__m256; TILE] {
        // a0 b0 a1 b1 | a4 b4 a5 b5, and a2 b2 a3 b3 | a6 b6 a7 b7.
        let t: [__m256; TILE] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm256_unpacklo_ps(a, b)
            } else {
                _mm256_unpackhi_ps(a, b)
            }
        });
        // Four rows at columns c and c + 4: a0 b0 c0 d0 | a4 b4 c4 d4, ...
        let mut u = t;
        for q in [0, 4] {
            u[q] = _mm256_shuffle_ps::<0x44>(t[q], t[q + 2]);
            u[q + 1] = _mm256_shuffle_ps::<0xee>(t[q], t[q + 2]);
            u[q + 2] = _mm256_shuffle_ps::<0x44>(t[q + 1], t[q + 3]);
            u[q + 3] = _mm256_shuffle_ps::<0xee>(t[q + 1], t[q + 3]);
        }
        std::array::from_fn(|j| {
            let (a, b) = (u[j % 4], u[4 + j % 4]);
            if j < 4 {
                _mm256_permute2f128_ps::<0x20>(a, b)
            } else {
                _mm256_permute2f128_ps::<0x31>(a, b)
            }
        })
    }

    /// [`super::transpose`] for `f32`, a tile of up to 8 x 8 at a time,
    /// every load and store masked as at AVX-512.
    #[target_feature(enable = "avx2")]
    pub(super) fn transpose_f32(from: &[f32], to: &mut [f32], rows: usize, cols: usize) {
        for r0 in (0..rows).step_by(TILE) {
            let nr = (rows - r0).min(TILE);
            let (row_lanes, none) = (mask(nr), mask(0));
            for c0 in (0..cols).step_by(TILE) {
                let nc = (cols - c0).min(TILE);
                let col_lanes = mask(nc);
                let r: [__m256; TILE] = std::array::from_fn(|i| {
                    let m = if i < nr { col_lanes } else { none };
                    let p = from.as_ptr().wrapping_add((r0 + i) * cols + c0);
                    // SAFETY: as at AVX-512: only the lanes of `m`, in
                    // `from`, are read; the others cannot fault.
                    unsafe { _mm256_maskload_ps(p, m) }
                });
                let t = transpose_tile(r);
                for (j, v) in t.into_iter().enumerate() {
                    let m = if j < nc { row_lanes } else { none };
                    let p = to.as_mut_ptr().wrapping_add((c0 + j) * rows + r0);
                    // SAFETY: as for the loads, in `to`.
                    unsafe { _mm256_maskstore_ps(p, m, v) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{transpose, transpose_by_rows};

    fn naive<F: Copy + Default>(from: &[F], rows: usize, cols: usize) -> Vec<F> {
        let mut to = vec![F::default(); rows * cols];
        for i in 0..rows {
            for k in 0..cols {
                to[k * rows + i] = from[i * cols + k];
            }
        }
        to
    }

    /// Every shape up to 40 x 40 (whole and partial tiles, both ways) and
    /// the column path's own (256 x 10, 10 x 256, 256 x 31): the
    /// dispatched kernel, each level's the CPU has, and the scalar form
    /// give the naive transposition, for both widths.
    #[test]
    fn transpose_matches_the_naive_one_for_every_shape() {
        let mut shapes: Vec<(usize, usize)> = (1..=40)
            .flat_map(|r| (1..=40).map(move |c| (r, c)))
            .collect();
        shapes.extend([(256, 10), (10, 256), (256, 31), (31, 256), (0, 5), (5, 0)]);
        for (rows, cols) in shapes {
            let from32: Vec<f32> = (0..rows * cols).map(|v| v as f32 + 0.5).collect();
            let want = naive(&from32, rows, cols);
            let mut to = vec![f32::NAN; rows * cols];
            transpose(&from32, &mut to, rows, cols);
            assert_eq!(to, want, "f32 {rows} x {cols}");
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx512f") {
                    let mut t = vec![f32::NAN; rows * cols];
                    // SAFETY: the CPU has AVX-512F.
                    unsafe { super::avx512::transpose_f32(&from32, &mut t, rows, cols) };
                    assert_eq!(t, want, "f32 AVX-512 {rows} x {cols}");
                }
                if is_x86_feature_detected!("avx2") {
                    let mut t = vec![f32::NAN; rows * cols];
                    // SAFETY: the CPU has AVX2.
                    unsafe { super::avx2::transpose_f32(&from32, &mut t, rows, cols) };
                    assert_eq!(t, want, "f32 AVX2 {rows} x {cols}");
                }
            }
            let mut by_rows = vec![f32::NAN; rows * cols];
            transpose_by_rows(&from32, &mut by_rows, rows, cols);
            assert_eq!(by_rows, want, "f32 by rows {rows} x {cols}");
            let from64: Vec<f64> = from32.iter().map(|&v| f64::from(v)).collect();
            let mut to64 = vec![f64::NAN; rows * cols];
            transpose(&from64, &mut to64, rows, cols);
            assert_eq!(to64, naive(&from64, rows, cols), "f64 {rows} x {cols}");
        }
    }
}
