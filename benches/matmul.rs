//! The three matrix products that `LinearCrossEntropy` runs per chunk of
//! `T` tokens, timed with the `gemm` crate (what classloss uses) and with
//! ndarray's `general_mat_mul` (matrixmultiply), in GFLOP/s, for
//! `benches/compare_linear_ce.py`:
//!
//! ```text
//! logits    Z   = H_c W^T     (T x D) x (D x V)   H_c row-major, W^T a transposed view, Z row-major
//! d_hidden  dH_c = s G W      (T x V) x (V x D)   all row-major, dH_c overwritten
//! d_weight  dW  += s G^T H_c  (V x T) x (T x D)   G^T a transposed view, dW accumulated
//! ```
//!
//! `W (V, D)` is the classifier's weight, `G (T, V)` the chunk's logits
//! gradient, `s = 1 / N` the mean's factor. `T` is the chunk the head uses
//! by default, `LinearCrossEntropy::<f32>::new().chunk_rows_for(V)`,
//! at most `N` (`--t` overrides it). A product counts `2 T D V` flops.
//!
//! `gemm` is called exactly as `src/numerics/matmul.rs` calls it (the
//! strides of the ndarray views, `Parallelism::None` on one thread,
//! `Parallelism::Rayon(n)` on `n` of rayon's global pool). ndarray runs on
//! one thread unless this crate's feature `matrixmultiply-threading` is on,
//! and then on `MATMUL_NUM_THREADS` threads (default: the physical cores).
//!
//! Each repetition times every (library, product) once, in turn, after
//! one untimed call of each; the median over `--reps` repetitions is
//! reported. One JSON line per (library, product):
//! `{"bench": "matmul", "library", "product", "n", "d", "v", "t",
//! "threads", "times_s": [...], "median_s", "gflops"}`.
//!
//! ```sh
//! MATMUL_NUM_THREADS=2 cargo run --release -p classloss-bench \
//!     --features matrixmultiply-threading --bin matmul -- \
//!     --n 2048 --d 1024 --v 32000 --threads 2 --reps 5
//! ```

#[path = "support.rs"]
mod support;

use std::time::Instant;

use classloss::LinearCrossEntropy;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

use support::{Args, json_list, median, uniform, use_threads};

const USAGE: &str = "usage: matmul --n N --d D --v V [--threads 1] [--reps 5] [--t T]";

#[derive(Clone, Copy)]
enum Library {
    Gemm,
    Ndarray,
}

impl Library {
    fn name(self) -> &'static str {
        match self {
            Library::Gemm => "gemm",
            Library::Ndarray => "ndarray",
        }
    }
}

const PRODUCTS: [&str; 3] = ["logits", "d_hidden", "d_weight"];

fn main() {
    let args = Args::parse(USAGE, &["n", "d", "v", "threads", "reps", "t"]);
    let (n, d, v) = (args.get("n", 0), args.get("d", 0), args.get("v", 0));
    if n == 0 || d == 0 || v == 0 {
        eprintln!("--n, --d and --v are required and positive\n{USAGE}");
        std::process::exit(2);
    }
    let threads = args.get("threads", 1);
    let reps = args.get("reps", 5);
    let default_t = LinearCrossEntropy::<f32>::new().chunk_rows_for(v).min(n);
    let t = args.get("t", default_t);
    use_threads(threads);

    let hidden = uniform(t, d, -1.0, 1.0, 1);
    let weight = uniform(v, d, -0.05, 0.05, 2);
    let g = uniform(t, v, -1e-4, 1e-4, 3);
    let scale = 1.0 / n as f32;
    let mut z = Array2::<f32>::zeros((t, v));
    let mut dh = Array2::<f32>::zeros((n.max(t), d));
    let mut dw = Array2::<f32>::zeros((v, d));

    let mut run = |library: Library, product: usize| {
        let t0 = Instant::now();
        let (a, b, alpha, beta, mut c) = match product {
            0 => (hidden.view(), weight.t(), 1.0, 0.0, z.view_mut()),
            1 => (
                g.view(),
                weight.view(),
                scale,
                0.0,
                dh.slice_mut(s![..t, ..]),
            ),
            _ => (g.t(), hidden.view(), scale, 1.0, dw.view_mut()),
        };
        match library {
            Library::Gemm => gemm_mat_mul(alpha, a, b, beta, &mut c, threads),
            Library::Ndarray => general_mat_mul(alpha, &a, &b, beta, &mut c),
        }
        t0.elapsed().as_secs_f64()
    };

    let libraries = [Library::Gemm, Library::Ndarray];
    let mut times = vec![vec![Vec::with_capacity(reps); PRODUCTS.len()]; libraries.len()];
    for library in libraries {
        for p in 0..PRODUCTS.len() {
            run(library, p); // warm-up: pages, packing buffers, threads
        }
    }
    for _ in 0..reps {
        for (li, &library) in libraries.iter().enumerate() {
            for (p, samples) in times[li].iter_mut().enumerate() {
                samples.push(run(library, p));
            }
        }
    }

    let flops = 2.0 * (t * d * v) as f64;
    for (li, library) in libraries.iter().enumerate() {
        for (p, samples) in times[li].iter().enumerate() {
            let med = median(&mut samples.clone());
            println!(
                "{{\"bench\": \"matmul\", \"library\": \"{}\", \"product\": \"{}\", \
                 \"n\": {n}, \"d\": {d}, \"v\": {v}, \"t\": {t}, \"threads\": {}, \
                 \"times_s\": {}, \"median_s\": {med:?}, \"gflops\": {:?}}}",
                library.name(),
                PRODUCTS[p],
                library_threads(*library, threads),
                json_list(samples),
                flops / med / 1e9,
            );
        }
    }
}

/// The threads a library's product runs on.
fn library_threads(library: Library, threads: usize) -> usize {
    match library {
        Library::Gemm => threads,
        // 0: matrixmultiply's default, the physical cores.
        Library::Ndarray if cfg!(feature = "matrixmultiply-threading") => {
            std::env::var("MATMUL_NUM_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        }
        Library::Ndarray => 1,
    }
}

/// `c = alpha a b + beta c` with `gemm`, as `classloss::numerics::matmul`
/// calls it (which is crate-private).
fn gemm_mat_mul(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(k == k2 && c.dim() == (m, n), "shapes");
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    let parallelism = match threads.min(rayon::current_num_threads()) {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    };
    // SAFETY: the pointers and strides come from live ndarray views of the
    // asserted shapes, and `c` is borrowed mutably so it aliases neither
    // `a` nor `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            beta != 0.0,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            // gemm's `alpha` scales the destination and `beta` the product.
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}
