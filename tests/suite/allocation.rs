//! What the fused call allocates, counted by a global allocator that
//! tallies the bytes each thread asks for. The README states these bounds
//! (one `f64` per row or block of rows, a few percent with a column-major
//! gradient buffer, the `(N, C)` cosines of the angular margins on
//! embeddings); the inputs stay below the parallel threshold, so every
//! allocation is on the calling thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::common::{embeddings, random_array};
use classloss::{
    AngularMarginHead, ArcFace, BceWithLogits, CrossEntropy, Differentiable, LinearCrossEntropy,
    LinearInput, Loss, SoftmaxFocal,
};
use ndarray::{Array1, Array2, ShapeBuilder};

struct Counting;

thread_local! {
    static BYTES: Cell<usize> = const { Cell::new(0) };
    // The bytes live on this thread (allocated minus freed, wrapping: a
    // block freed here that another thread allocated), and their peak.
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the tallies are thread-local
// counters (no allocation of their own).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = BYTES.try_with(|b| b.set(b.get() + layout.size()));
        let _ = LIVE.try_with(|l| {
            let live = l.get().wrapping_add(layout.size());
            l.set(live);
            let _ = PEAK.try_with(|p| p.set(p.get().max(live)));
        });
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get().wrapping_sub(layout.size())));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The bytes `f` allocates on this thread.
fn allocated(f: impl FnOnce()) -> usize {
    let before = BYTES.with(Cell::get);
    f();
    BYTES.with(Cell::get) - before
}

/// The peak of the bytes `f` holds at once on this thread, beyond what was
/// live before it.
fn peak_extra(f: impl FnOnce()) -> usize {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    f();
    PEAK.with(Cell::get).wrapping_sub(before)
}

fn logits_and_labels(n: usize, c: usize) -> (Array2<f32>, Array1<usize>) {
    let x = random_array(&[n, c], 3, 3.0).mapv(|v| v as f32);
    let x = x.into_dimensionality().unwrap();
    (x, Array1::from_shape_fn(n, |i| (i * 7) % c))
}

#[test]
fn softmax_rows_allocate_at_most_one_f64_a_row() {
    let (n, c) = (256, 200);
    let (x, y) = logits_and_labels(n, c);
    let input_bytes = n * c * 4;
    let mut g = Array2::<f32>::zeros((n, c));
    for loss in [
        CrossEntropy::new(),
        CrossEntropy::new().with_label_smoothing(0.1).unwrap(),
    ] {
        let bytes = allocated(|| {
            loss.forward_backward_into(&x, &y, &mut g).unwrap();
        });
        assert!(bytes <= 8 * n + 256, "{bytes} bytes for {input_bytes}");
    }
    let focal = SoftmaxFocal::<f32>::new();
    let bytes = allocated(|| {
        focal.forward_backward_into(&x, &y, &mut g).unwrap();
    });
    assert!(bytes <= 8 * n + 256, "{bytes} bytes for {input_bytes}");
    // A column-major buffer: the rows are strided, a row's scratch at most.
    let mut gf = Array2::<f32>::zeros((n, c).f());
    let bytes = allocated(|| {
        CrossEntropy::new()
            .forward_backward_into(&x, &y, &mut gf)
            .unwrap();
    });
    assert!(bytes * 20 <= input_bytes, "{bytes} bytes for {input_bytes}");
}

#[test]
fn binary_losses_allocate_a_few_bytes_a_block() {
    let (n, k) = (256, 200);
    let x = random_array(&[n, k], 4, 3.0).mapv(|v| v as f32);
    let x: Array2<f32> = x.into_dimensionality().unwrap();
    let t = x.mapv(|v| f32::from(v > 0.0));
    let mut g = Array2::<f32>::zeros((n, k));
    let bytes = allocated(|| {
        BceWithLogits::new()
            .forward_backward_into(&x, &t, &mut g)
            .unwrap();
    });
    assert!(bytes * 100 <= n * k * 4, "{bytes} bytes");
}

#[test]
fn angular_margins_on_embeddings_allocate_the_cosines() {
    let (n, c, d) = (64, 100, 16);
    let e: Array2<f32> = random_array(&[n, d], 5, 1.0)
        .mapv(|v| v as f32)
        .into_dimensionality()
        .unwrap();
    let w: Array2<f32> = random_array(&[c, d], 6, 1.0)
        .mapv(|v| v as f32)
        .into_dimensionality()
        .unwrap();
    let y = Array1::from_shape_fn(n, |i| i % c);
    let arc = ArcFace::new();
    let mut grad = arc.zeros_grad(embeddings(&e, &w));
    let bytes = allocated(|| {
        arc.forward_backward_into(embeddings(&e, &w), &y, &mut grad)
            .unwrap();
    });
    // Besides the cosines: the matrix products' packing buffers
    // (matrixmultiply's, bounded by its block sizes, about 1 MiB in f32),
    // the norms and per-row terms, and a block of 64 normalized rows.
    let cosines = n * c * 4;
    let rest = (1 << 20) + 8 * (4 * n + 3 * c + 64 * d);
    assert!(
        bytes >= cosines && bytes <= cosines + rest,
        "{bytes} bytes, cosines {cosines}"
    );
}

#[test]
fn linear_cross_entropy_holds_one_chunk_of_logits_and_a_few_rows() {
    let (n, d, v, chunk) = (512, 32, 2000, 16);
    let cast = |a: ndarray::ArrayD<f64>| -> Array2<f32> {
        a.mapv(|x| x as f32).into_dimensionality().unwrap()
    };
    let hidden = cast(random_array(&[n, d], 5, 1.0));
    let weight = cast(random_array(&[v, d], 6, 0.3));
    let bias = Array1::<f32>::zeros(v);
    let labels = Array1::from_shape_fn(n, |i| (i * 13) % v);
    let input = LinearInput {
        hidden: hidden.view(),
        weight: weight.view(),
        bias: Some(bias.view()),
    };
    let head = LinearCrossEntropy::<f32>::new()
        .with_label_smoothing(0.1)
        .and_then(|h| h.with_chunk_rows(chunk))
        .unwrap();
    let mut grad = head.zeros_grad(input);
    let peak = peak_extra(|| {
        head.forward_backward_into(input, &labels, &mut grad)
            .unwrap();
    });
    // One chunk x V buffer, a copy of a block of rows (at most 256 KiB, and
    // at most the chunk) per thread, gemm's packing (about 1 MiB).
    let buffers = chunk * v * 4 + 2 * (256 << 10).min(chunk * v * 4);
    let logits_and_grad = 2 * n * v * 4;
    assert!(
        peak <= buffers + 1536 * 1024,
        "peak {peak} bytes, buffers {buffers}"
    );
    assert!(
        peak * 4 <= logits_and_grad,
        "peak {peak} bytes vs {logits_and_grad}"
    );
    let peak = peak_extra(|| {
        head.forward(input, &labels).unwrap();
    });
    assert!(
        peak <= chunk * v * 4 + 1536 * 1024,
        "forward: peak {peak} bytes"
    );
}

#[test]
fn angular_margin_head_holds_one_chunk_of_cosines_and_vectors() {
    // The fused head against the (N, C) cosines that ArcFace on embeddings
    // allocates: one chunk x C buffer, a row of C cosines and a copy of the
    // lane per block (on this thread), the norms and reciprocals per class
    // (a 16-byte norm and two f32) and per sample, gemm's packing (about
    // 1 MiB); no copy of the weight or of the embeddings.
    let (n, c, d, chunk) = (512, 4000, 16, 16);
    let cast = |a: ndarray::ArrayD<f64>| -> Array2<f32> {
        a.mapv(|v| v as f32).into_dimensionality().unwrap()
    };
    let e = cast(random_array(&[n, d], 5, 1.0));
    let w = cast(random_array(&[c, d], 6, 1.0));
    let y = Array1::from_shape_fn(n, |i| (i * 13) % c);
    let head = AngularMarginHead::new(ArcFace::new())
        .with_chunk_rows(chunk)
        .unwrap();
    let mut grad = head.zeros_grad(embeddings(&e, &w));
    let peak = peak_extra(|| {
        head.forward_backward_into(embeddings(&e, &w), &y, &mut grad)
            .unwrap();
    });
    let buffers = chunk * c * 4 + 2 * c * 4 + c * (16 + 8) + n * (16 + 4 * 4);
    let cosines = n * c * 4;
    assert!(
        peak <= buffers + 1536 * 1024,
        "peak {peak} bytes, buffers {buffers}"
    );
    assert!(peak * 4 <= cosines, "peak {peak} bytes vs {cosines}");
    let peak = peak_extra(|| {
        head.forward(embeddings(&e, &w), &y).unwrap();
    });
    assert!(peak <= buffers + 1536 * 1024, "forward: peak {peak} bytes");
}
