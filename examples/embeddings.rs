//! Learns 2-D embeddings of six Gaussian clusters in 10-D with a small MLP,
//! with plain softmax (cross-entropy on `W e`), with ArcFace without a
//! margin (softmax on normalized embeddings and weights) and with ArcFace's
//! margin, and prints how the margin changes the geometry: the mean angle of
//! an embedding to its class's center direction (intra-class) against the
//! smallest angle between two class centers (inter-class).
//!
//! Everything but the losses is written out here: the data, the MLP's
//! forward and backward pass, and Adam.
//!
//! ```text
//! cargo run --release --example embeddings
//! ```

use classloss::{ArcFace, ClassTarget, CrossEntropy, Differentiable, Embeddings};
use ndarray::{Array1, Array2, Axis};

const CLASSES: usize = 6;
const INPUT: usize = 10;
const HIDDEN: usize = 32;
const EMBED: usize = 2;
const STEPS: usize = 600;

/// A seeded xorshift generator with Gaussian draws (Box-Muller), so the
/// example needs no dependency and prints the same numbers every run.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn matrix(&mut self, rows: usize, cols: usize, std: f64) -> Array2<f64> {
        Array2::from_shape_simple_fn((rows, cols), || self.normal() * std)
    }
}

/// `per_class` points of each class: a random 10-D mean (spread 1.2) plus
/// unit Gaussian noise, so the clusters overlap a little.
fn clusters(means: &Array2<f64>, per_class: usize, rng: &mut Rng) -> (Array2<f64>, Array1<usize>) {
    let n = CLASSES * per_class;
    let mut x = rng.matrix(n, INPUT, 1.0);
    let labels = Array1::from_shape_fn(n, |i| i % CLASSES);
    for (mut row, &y) in x.rows_mut().into_iter().zip(&labels) {
        row += &means.row(y);
    }
    (x, labels)
}

/// A 10 -> 32 (tanh) -> 2 perceptron.
#[derive(Clone)]
struct Mlp {
    w1: Array2<f64>,
    b1: Array2<f64>,
    w2: Array2<f64>,
    b2: Array2<f64>,
}

struct Cache {
    hidden: Array2<f64>,
}

impl Mlp {
    fn new(rng: &mut Rng) -> Self {
        Mlp {
            w1: rng.matrix(HIDDEN, INPUT, (1.0 / INPUT as f64).sqrt()),
            b1: Array2::zeros((1, HIDDEN)),
            w2: rng.matrix(EMBED, HIDDEN, (1.0 / HIDDEN as f64).sqrt()),
            b2: Array2::zeros((1, EMBED)),
        }
    }

    fn forward(&self, x: &Array2<f64>) -> (Array2<f64>, Cache) {
        let hidden = (x.dot(&self.w1.t()) + &self.b1).mapv(f64::tanh);
        let e = hidden.dot(&self.w2.t()) + &self.b2;
        (e, Cache { hidden })
    }

    /// The parameters' gradients from `d loss / d embeddings`.
    fn backward(&self, x: &Array2<f64>, cache: &Cache, d_e: &Array2<f64>) -> [Array2<f64>; 4] {
        let h = &cache.hidden;
        let d_w2 = d_e.t().dot(h);
        let d_b2 = d_e.sum_axis(Axis(0)).insert_axis(Axis(0));
        let d_pre = d_e.dot(&self.w2) * h.mapv(|v| 1.0 - v * v);
        let d_w1 = d_pre.t().dot(x);
        let d_b1 = d_pre.sum_axis(Axis(0)).insert_axis(Axis(0));
        [d_w1, d_b1, d_w2, d_b2]
    }

    fn params_mut(&mut self) -> [&mut Array2<f64>; 4] {
        [&mut self.w1, &mut self.b1, &mut self.w2, &mut self.b2]
    }
}

/// Adam over a fixed list of matrices.
struct Adam {
    lr: f64,
    t: i32,
    m: Vec<Array2<f64>>,
    v: Vec<Array2<f64>>,
}

impl Adam {
    fn new(lr: f64, shapes: &[(usize, usize)]) -> Self {
        Adam {
            lr,
            t: 0,
            m: shapes.iter().map(|&s| Array2::zeros(s)).collect(),
            v: shapes.iter().map(|&s| Array2::zeros(s)).collect(),
        }
    }

    fn step(&mut self, params: Vec<&mut Array2<f64>>, grads: &[&Array2<f64>]) {
        let (b1, b2, eps) = (0.9_f64, 0.999_f64, 1e-8);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for (((p, g), m), v) in params
            .into_iter()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            m.zip_mut_with(g, |m, &g| *m = b1 * *m + (1.0 - b1) * g);
            v.zip_mut_with(g, |v, &g| *v = b2 * *v + (1.0 - b2) * g * g);
            ndarray::Zip::from(p)
                .and(&*m)
                .and(&*v)
                .for_each(|p, &m, &v| {
                    *p -= self.lr * (m / c1) / ((v / c2).sqrt() + eps);
                });
        }
    }
}

/// Which head (and loss) sits on the embeddings.
enum Head {
    Softmax(CrossEntropy<f64>),
    ArcFace(ArcFace),
}

/// Trains the MLP and the class weights `(C, 2)`; returns both.
fn train(head: &Head, x: &Array2<f64>, labels: &Array1<usize>, seed: u64) -> (Mlp, Array2<f64>) {
    let mut rng = Rng(seed);
    let mut mlp = Mlp::new(&mut rng);
    let mut w = rng.matrix(CLASSES, EMBED, 1.0);
    let shapes = [
        mlp.w1.dim(),
        mlp.b1.dim(),
        mlp.w2.dim(),
        mlp.b2.dim(),
        w.dim(),
    ];
    let mut adam = Adam::new(0.01, &shapes);
    for _ in 0..STEPS {
        let (e, cache) = mlp.forward(x);
        let (d_e, d_w) = match head {
            Head::Softmax(ce) => {
                let logits = e.dot(&w.t());
                let d_logits = ce
                    .backward(logits.view(), ClassTarget::Labels(labels.view()))
                    .expect("valid logits and labels");
                (d_logits.dot(&w), d_logits.t().dot(&e))
            }
            Head::ArcFace(arc) => {
                let input = Embeddings {
                    embeddings: e.view(),
                    weight: w.view(),
                };
                let g = arc
                    .backward(input, labels.view())
                    .expect("nonzero embeddings and weights");
                (g.embeddings, g.weight)
            }
        };
        let [g1, g2, g3, g4] = mlp.backward(x, &cache, &d_e);
        let mut params: Vec<&mut Array2<f64>> = mlp.params_mut().into_iter().collect();
        params.push(&mut w);
        adam.step(params, &[&g1, &g2, &g3, &g4, &d_w]);
    }
    (mlp, w)
}

/// Angle in degrees between two 2-D vectors.
fn angle(a: &[f64; 2], b: &[f64; 2]) -> f64 {
    let dot = a[0] * b[0] + a[1] * b[1];
    let na = (a[0] * a[0] + a[1] * a[1]).sqrt();
    let nb = (b[0] * b[0] + b[1] * b[1]).sqrt();
    (dot / (na * nb)).clamp(-1.0, 1.0).acos().to_degrees()
}

struct Geometry {
    intra: f64,
    inter: f64,
    accuracy: f64,
}

impl Geometry {
    fn add(&self, o: &Geometry) -> Geometry {
        Geometry {
            intra: self.intra + o.intra,
            inter: self.inter + o.inter,
            accuracy: self.accuracy + o.accuracy,
        }
    }

    fn scale(&self, runs: usize) -> Geometry {
        let k = runs as f64;
        Geometry {
            intra: self.intra / k,
            inter: self.inter / k,
            accuracy: self.accuracy / k,
        }
    }
}

/// Mean angle to the own class's center direction, smallest angle between
/// two centers, and nearest-center (by cosine) accuracy on `e`.
fn geometry(e: &Array2<f64>, labels: &Array1<usize>) -> Geometry {
    let unit: Vec<[f64; 2]> = e
        .rows()
        .into_iter()
        .map(|r| {
            let n = r.dot(&r).sqrt();
            [r[0] / n, r[1] / n]
        })
        .collect();
    let mut centers = [[0.0; 2]; CLASSES];
    for (u, &y) in unit.iter().zip(labels) {
        centers[y][0] += u[0];
        centers[y][1] += u[1];
    }
    let intra = unit
        .iter()
        .zip(labels)
        .map(|(u, &y)| angle(u, &centers[y]))
        .sum::<f64>()
        / unit.len() as f64;
    let mut inter = f64::INFINITY;
    for i in 0..CLASSES {
        for j in i + 1..CLASSES {
            inter = inter.min(angle(&centers[i], &centers[j]));
        }
    }
    let correct = unit
        .iter()
        .zip(labels)
        .filter(|&(u, &y)| {
            let best = (0..CLASSES)
                .min_by(|&a, &b| angle(u, &centers[a]).total_cmp(&angle(u, &centers[b])))
                .unwrap();
            best == y
        })
        .count();
    Geometry {
        intra,
        inter,
        accuracy: correct as f64 / unit.len() as f64,
    }
}

fn main() {
    let mut rng = Rng(0x5EED_1234);
    let means = rng.matrix(CLASSES, INPUT, 1.2);
    let (x_train, y_train) = clusters(&means, 120, &mut rng);
    let (x_test, y_test) = clusters(&means, 200, &mut rng);

    let s = 16.0;
    let arcface = |m: f64| {
        ArcFace::new()
            .with_scale(s)
            .and_then(|a| a.with_margin(m))
            .expect("valid options")
    };
    let heads = [
        (
            "softmax (CE on W e)".to_string(),
            Head::Softmax(CrossEntropy::new()),
        ),
        (format!("ArcFace s={s}, m=0"), Head::ArcFace(arcface(0.0))),
        (format!("ArcFace s={s}, m=0.5"), Head::ArcFace(arcface(0.5))),
    ];
    println!(
        "{CLASSES} Gaussian clusters in {INPUT}-D -> MLP {INPUT}-{HIDDEN}-{EMBED}, {STEPS} full-batch Adam steps,"
    );
    println!(
        "{} train / {} test points; angles in degrees, means over 3 initializations\n",
        x_train.nrows(),
        x_test.nrows()
    );
    println!("{:<22} {:>24} {:>24} {:>9}", "", "train", "test", "test");
    println!(
        "{:<22} {:>8} {:>8} {:>6} {:>8} {:>8} {:>6} {:>9}",
        "head", "intra", "inter", "ratio", "intra", "inter", "ratio", "accuracy"
    );
    for (name, head) in &heads {
        // Averaged over a few initializations: one run of a 2-D embedding
        // can merge two classes by bad luck.
        let seeds = [7, 8, 9];
        let mut runs = seeds.iter().map(|&seed| {
            let (mlp, _w) = train(head, &x_train, &y_train, seed);
            let (e_train, _) = mlp.forward(&x_train);
            let (e_test, _) = mlp.forward(&x_test);
            (geometry(&e_train, &y_train), geometry(&e_test, &y_test))
        });
        let first = runs.next().expect("at least one seed");
        let (a, b) = runs.fold(first, |(a, b), (c, d)| (a.add(&c), b.add(&d)));
        let (a, b) = (a.scale(seeds.len()), b.scale(seeds.len()));
        println!(
            "{:<22} {:>8.1} {:>8.1} {:>6.3} {:>8.1} {:>8.1} {:>6.3} {:>8.1}%",
            name,
            a.intra,
            a.inter,
            a.intra / a.inter,
            b.intra,
            b.inter,
            b.intra / b.inter,
            100.0 * b.accuracy
        );
    }
    println!(
        "\nintra-class: mean angle of an embedding to its class's mean direction;\n\
         min inter: smallest angle between two class mean directions;\n\
         ratio: intra / inter (smaller is more discriminative); accuracy: nearest\n\
         class direction by cosine. ArcFace with m = 0 is softmax on normalized\n\
         embeddings and weights; what changes from it to m = 0.5 is the margin."
    );
}
