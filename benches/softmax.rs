//! Criterion benchmarks of the fused loss-and-gradient kernels
//! (`forward_backward_into` a reused buffer) over the shapes of
//! `examples/perf.rs`, each beside a copy of the same bytes (the floor).
//! Throughput is in elements (logits).
//!
//! Run: `cargo bench -p classloss-bench` (a few minutes), one group with
//! `cargo bench -p classloss-bench -- cross_entropy`, a smoke run (every
//! benchmark once) with `cargo bench -p classloss-bench -- --test`.
//! `cargo run --release --example perf` gives the same cells, and more, as
//! one table.

use std::hint::black_box;
use std::time::Duration;

use classloss::{AngularMargin, ArcFace, BceWithLogits, CrossEntropy, Differentiable};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use ndarray::{Array1, Array2};

/// The cross-entropy shapes `(N, C)`: small heads up to a 128k vocabulary.
const CE_SHAPES: [(usize, usize); 7] = [
    (128, 10),
    (128, 100),
    (256, 1000),
    (4096, 1000),
    (64, 21841),
    (1024, 32000),
    (256, 128256),
];
const BCE_SHAPES: [(usize, usize); 2] = [(4096, 80), (1024, 32000)];
const ARCFACE_SHAPE: (usize, usize) = (512, 100_000);
/// `(N, C, H, W)`: a batch of 128x128 segmentation maps over 21 classes.
const SPATIAL_SHAPE: (usize, usize, usize, usize) = (8, 21, 128, 128);

/// xorshift64*, seeded as in `examples/perf/inputs.rs`: the same inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `(n, c)` values uniform in `[lo, hi)`.
fn uniform(n: usize, c: usize, lo: f64, hi: f64, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((n, c), || (lo + (hi - lo) * rng.unit()) as f32)
}

/// `n` labels uniform in `0..c`.
fn labels(n: usize, c: usize) -> Array1<usize> {
    let mut rng = Rng::new(3);
    Array1::from_shape_simple_fn(n, || (rng.next_u64() % c as u64) as usize)
}

/// Fewer, flat samples for the large shapes (a call takes up to a second).
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, elements: usize) {
    group.throughput(Throughput::Elements(elements as u64));
    if elements >= 1 << 20 {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
    } else {
        group
            .sampling_mode(SamplingMode::Auto)
            .sample_size(50)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    }
}

/// Benchmarks `run` on inputs that `make` builds once, and only if the
/// benchmark is selected (the large ones take hundreds of MB).
fn bench<X>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    (n, c): (usize, usize),
    make: impl Fn() -> X,
    mut run: impl FnMut(&mut X),
) {
    configure(group, n * c);
    let mut inputs = None;
    group.bench_function(BenchmarkId::new(name, format!("{n}x{c}")), |b| {
        let x = inputs.get_or_insert_with(&make);
        b.iter(|| run(x));
    });
}

/// The floor: read `(n, c)` logits, write a buffer of the same size.
fn bench_copy(group: &mut BenchmarkGroup<'_, WallTime>, shape: (usize, usize)) {
    let make = || {
        let x = uniform(shape.0, shape.1, -4.0, 4.0, 1);
        let out = vec![0.0_f32; x.len()];
        (x, out)
    };
    bench(group, "copy", shape, make, |(x, out)| {
        out.copy_from_slice(black_box(x.as_slice().expect("standard layout")));
        black_box(out);
    });
}

fn cross_entropy(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_entropy_f32");
    let ce = CrossEntropy::<f32>::new();
    for shape in CE_SHAPES {
        let make = || {
            let x = uniform(shape.0, shape.1, -4.0, 4.0, 1);
            let g = Array2::zeros(x.raw_dim());
            (x, labels(shape.0, shape.1), g)
        };
        bench(&mut group, "fused", shape, make, |(x, y, g)| {
            let target = y.view();
            black_box(ce.forward_backward_into(x.view(), target, g.view_mut())).expect("valid");
        });
        bench_copy(&mut group, shape);
    }
    group.finish();
}

fn bce_with_logits(c: &mut Criterion) {
    let mut group = c.benchmark_group("bce_with_logits_f32");
    let bce = BceWithLogits::<f32>::new();
    for shape in BCE_SHAPES {
        let make = || {
            let x = uniform(shape.0, shape.1, -4.0, 4.0, 1);
            // 1 with probability 0.1.
            let t = uniform(shape.0, shape.1, 0.0, 1.0, 4).mapv(|u| f32::from(u8::from(u < 0.1)));
            let g = Array2::zeros(x.raw_dim());
            (x, t, g)
        };
        bench(&mut group, "fused", shape, make, |(x, t, g)| {
            black_box(bce.forward_backward_into(x.view(), t.view(), g.view_mut())).expect("valid");
        });
        bench_copy(&mut group, shape);
    }
    group.finish();
}

fn arcface_cosines(c: &mut Criterion) {
    let mut group = c.benchmark_group("arcface_cosines_f32");
    let arc = ArcFace::new().on_cosines();
    let shape = ARCFACE_SHAPE;
    let make = || {
        let x = uniform(shape.0, shape.1, -0.99, 0.99, 2);
        let g = Array2::zeros(x.raw_dim());
        (x, labels(shape.0, shape.1), g)
    };
    bench(&mut group, "fused", shape, make, |(x, y, g)| {
        black_box(arc.forward_backward_into(x.view(), y.view(), g.view_mut())).expect("valid");
    });
    bench_copy(&mut group, shape);
    group.finish();
}

/// Segmentation-shaped cross-entropy: `(N, C, H, W)` logits, `(N, H, W)`
/// labels (the column path), beside the copy floor of the same bytes.
fn cross_entropy_spatial(c: &mut Criterion) {
    let (n, classes, h, w) = SPATIAL_SHAPE;
    let mut group = c.benchmark_group("cross_entropy_spatial_f32");
    let ce = CrossEntropy::<f32, ndarray::Ix4>::spatial();
    let elements = n * classes * h * w;
    configure(&mut group, elements);
    let name = format!("{n}x{classes}x{h}x{w}");
    let mut inputs = None;
    group.bench_function(BenchmarkId::new("fused", &name), |b| {
        let (x, y, g) = inputs.get_or_insert_with(|| {
            let x = uniform(n, classes * h * w, -4.0, 4.0, 1)
                .into_shape_with_order((n, classes, h, w))
                .expect("same length");
            let y = labels(n * h * w, classes)
                .into_shape_with_order((n, h, w))
                .expect("same length");
            let g = ndarray::Array4::zeros(x.raw_dim());
            (x, y, g)
        });
        b.iter(|| {
            let target = y.view();
            black_box(ce.forward_backward_into(x.view(), target, g.view_mut())).expect("valid");
        });
    });
    group.finish();
    let mut floor = c.benchmark_group("cross_entropy_spatial_f32");
    bench_copy(&mut floor, (n, classes * h * w));
    floor.finish();
}

criterion_group!(
    benches,
    cross_entropy,
    cross_entropy_spatial,
    bce_with_logits,
    arcface_cosines
);
criterion_main!(benches);
