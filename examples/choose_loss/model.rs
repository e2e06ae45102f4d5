//! The two classifiers, by hand: softmax regression and a one-hidden-layer
//! ReLU network, each with a linear head (logits `z W + b`) or a cosine head
//! (a class-weight matrix the margin losses normalize), and Adam.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};

use super::rng::Rng;

/// What sits under the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Nothing: the head sees the (standardized) pixels. With a linear
    /// head this is softmax regression.
    Identity,
    /// One ReLU layer of this width.
    Hidden(usize),
}

/// What turns features into class scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Head {
    /// Logits `z W + b`, `W` of shape `(E, C)`.
    Linear,
    /// `scale * cos(z, W_c)` for a class matrix `W` of shape `(C, E)`; the
    /// loss receives `z` and `W` and returns both gradients.
    Cosine {
        /// The scale `s` used for predictions' confidences.
        scale: f32,
    },
}

/// Parameters, their gradients and Adam's moments, plus the activations a
/// backward pass needs.
pub struct Net {
    body: Body,
    head: Head,
    /// `[W1, b1]` for a hidden body, then `[W, b]` (linear) or `[W]`
    /// (cosine). Biases are `(1, n)` rows.
    params: Vec<Array2<f32>>,
    grads: Vec<Array2<f32>>,
    m: Vec<Array2<f32>>,
    v: Vec<Array2<f32>>,
    steps: i32,
    // Cached by `features` for the backward pass.
    input: Array2<f32>,
    pre: Array2<f32>,
    z: Array2<f32>,
}

/// Adam's settings (Kingma and Ba, 2015).
#[derive(Clone, Copy, Debug)]
pub struct Adam {
    /// Step size.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub eps: f32,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 3e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

fn gaussian(rows: usize, cols: usize, std: f64, rng: &mut Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || (std * rng.normal()) as f32)
}

impl Net {
    /// He-initialized weights (Glorot for the head), zero biases.
    pub fn new(inputs: usize, classes: usize, body: Body, head: Head, rng: &mut Rng) -> Self {
        let mut params = Vec::new();
        let width = match body {
            Body::Identity => inputs,
            Body::Hidden(h) => {
                params.push(gaussian(inputs, h, (2.0 / inputs as f64).sqrt(), rng));
                params.push(Array2::zeros((1, h)));
                h
            }
        };
        let glorot = (2.0 / (width + classes) as f64).sqrt();
        match head {
            Head::Linear => {
                params.push(gaussian(width, classes, glorot, rng));
                params.push(Array2::zeros((1, classes)));
            }
            Head::Cosine { .. } => params.push(gaussian(classes, width, glorot, rng)),
        }
        let zeros: Vec<Array2<f32>> = params.iter().map(|p| Array2::zeros(p.raw_dim())).collect();
        Net {
            body,
            head,
            grads: zeros.clone(),
            m: zeros.clone(),
            v: zeros,
            params,
            steps: 0,
            input: Array2::zeros((0, 0)),
            pre: Array2::zeros((0, 0)),
            z: Array2::zeros((0, 0)),
        }
    }

    /// The head's parameter index.
    fn head_at(&self) -> usize {
        match self.body {
            Body::Identity => 0,
            Body::Hidden(_) => 2,
        }
    }

    /// Computes and caches the features `z` the head sees.
    pub fn features(&mut self, x: ArrayView2<'_, f32>) -> ArrayView2<'_, f32> {
        match self.body {
            Body::Identity => self.z = x.to_owned(),
            Body::Hidden(_) => {
                self.input = x.to_owned();
                self.pre = x.dot(&self.params[0]) + &self.params[1];
                self.z = self.pre.mapv(|a| a.max(0.0));
            }
        }
        self.z.view()
    }

    /// Logits of a linear head for the cached features.
    pub fn logits(&self) -> Array2<f32> {
        let h = self.head_at();
        self.z.dot(&self.params[h]) + &self.params[h + 1]
    }

    /// The cosine head's class matrix `(C, E)`.
    pub fn class_matrix(&self) -> ArrayView2<'_, f32> {
        self.params[self.head_at()].view()
    }

    /// The class scores used for predictions: logits, or `s * cos`.
    pub fn scores(&mut self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.features(x);
        match self.head {
            Head::Linear => self.logits(),
            Head::Cosine { scale } => {
                cosines(self.z.view(), self.params[self.head_at()].view()) * scale
            }
        }
    }

    /// Backward from `d loss / d logits` (linear head).
    pub fn backward_logits(&mut self, dlogits: ArrayView2<'_, f32>) {
        let h = self.head_at();
        self.grads[h] = self.z.t().dot(&dlogits);
        self.grads[h + 1] = dlogits.sum_axis(Axis(0)).insert_axis(Axis(0));
        let dz = dlogits.dot(&self.params[h].t());
        self.backward_body(dz);
    }

    /// Backward from the cosine loss's gradients for the features and the
    /// class matrix.
    pub fn backward_cosine(&mut self, dz: ArrayView2<'_, f32>, dw: ArrayView2<'_, f32>) {
        let h = self.head_at();
        self.grads[h].assign(&dw);
        self.backward_body(dz.to_owned());
    }

    fn backward_body(&mut self, mut dz: Array2<f32>) {
        if let Body::Hidden(_) = self.body {
            ndarray::Zip::from(&mut dz)
                .and(&self.pre)
                .for_each(|d, &a| {
                    if a <= 0.0 {
                        *d = 0.0
                    }
                });
            self.grads[0] = self.input.t().dot(&dz);
            self.grads[1] = dz.sum_axis(Axis(0)).insert_axis(Axis(0));
        }
    }

    /// One Adam step on every parameter.
    pub fn step(&mut self, opt: &Adam) {
        self.steps += 1;
        let c1 = 1.0 - opt.beta1.powi(self.steps);
        let c2 = 1.0 - opt.beta2.powi(self.steps);
        for k in 0..self.params.len() {
            ndarray::Zip::from(&mut self.params[k])
                .and(&mut self.m[k])
                .and(&mut self.v[k])
                .and(&self.grads[k])
                .for_each(|p, m, v, &g| {
                    *m = opt.beta1 * *m + (1.0 - opt.beta1) * g;
                    *v = opt.beta2 * *v + (1.0 - opt.beta2) * g * g;
                    *p -= opt.lr * (*m / c1) / ((*v / c2).sqrt() + opt.eps);
                });
        }
    }
}

/// Each row divided by its length (a zero row stays zero).
fn unit_rows(m: ArrayView2<'_, f32>) -> (Array2<f32>, Array1<f32>) {
    let norms = m.map_axis(Axis(1), |r| r.dot(&r).sqrt().max(1e-12));
    let unit = &m / &norms.view().insert_axis(Axis(1));
    (unit, norms)
}

/// The cosine matrix `(N, C)` between features `z` `(N, E)` and the class
/// matrix `w` `(C, E)`: a normalized linear layer without bias.
pub fn cosines(z: ArrayView2<'_, f32>, w: ArrayView2<'_, f32>) -> Array2<f32> {
    unit_rows(z).0.dot(&unit_rows(w).0.t())
}

/// Backward of [`cosines`]: from `d loss / d cos` to the gradients for `z`
/// and `w`, for losses defined on cosines (LDAM) rather than on embeddings
/// (ArcFace and CosFace take `z` and `w` and differentiate the
/// normalization themselves). Through `u = z / |z|` the gradient loses its
/// component along `u`: `dz = (du - u (u . du)) / |z|`.
pub fn cosines_backward(
    z: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    dcos: ArrayView2<'_, f32>,
    mut dz: ArrayViewMut2<'_, f32>,
    mut dw: ArrayViewMut2<'_, f32>,
) {
    let (u, z_norms) = unit_rows(z);
    let (v, w_norms) = unit_rows(w);
    let project = |unit: &Array2<f32>,
                   norms: &Array1<f32>,
                   d: Array2<f32>,
                   out: &mut ArrayViewMut2<'_, f32>| {
        for (((mut o, d), u), &n) in out
            .rows_mut()
            .into_iter()
            .zip(d.rows())
            .zip(unit.rows())
            .zip(norms)
        {
            let along = u.dot(&d);
            ndarray::Zip::from(&mut o)
                .and(&d)
                .and(&u)
                .for_each(|o, &d, &u| *o = (d - u * along) / n);
        }
    };
    project(&u, &z_norms, dcos.dot(&v), &mut dz);
    project(&v, &w_norms, dcos.t().dot(&u), &mut dw);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `0.5 * sum(logits^2)`, whose gradient is the logits themselves.
    fn half_square(net: &mut Net, x: ArrayView2<'_, f32>) -> f64 {
        net.features(x);
        net.logits()
            .iter()
            .map(|&v| 0.5 * f64::from(v) * f64::from(v))
            .sum()
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Rng::new(2);
        let x = gaussian(5, 4, 1.0, &mut rng);
        for body in [Body::Identity, Body::Hidden(6)] {
            let mut net = Net::new(4, 3, body, Head::Linear, &mut rng);
            net.features(x.view());
            let logits = net.logits();
            net.backward_logits(logits.view());
            for k in 0..net.params.len() {
                for idx in 0..net.params[k].len() {
                    let h = 1e-2_f32;
                    let orig = net.params[k].as_slice().unwrap()[idx];
                    net.params[k].as_slice_mut().unwrap()[idx] = orig + h;
                    let up = half_square(&mut net, x.view());
                    net.params[k].as_slice_mut().unwrap()[idx] = orig - h;
                    let down = half_square(&mut net, x.view());
                    net.params[k].as_slice_mut().unwrap()[idx] = orig;
                    let fd = (up - down) / (2.0 * f64::from(h));
                    let g = f64::from(net.grads[k].as_slice().unwrap()[idx]);
                    // Away from ReLU kinks the check is tight; a kink
                    // crossed by the step would show as a large error.
                    assert!(
                        (fd - g).abs() <= 2e-2 * (1.0 + g.abs()),
                        "{body:?} param {k}[{idx}]: fd {fd} vs {g}"
                    );
                }
            }
        }
    }

    #[test]
    fn cosine_scores_are_scaled_cosines() {
        let mut rng = Rng::new(3);
        let mut net = Net::new(2, 2, Body::Identity, Head::Cosine { scale: 10.0 }, &mut rng);
        net.params[0] = ndarray::array![[1.0, 0.0], [0.0, 2.0]];
        let s = net.scores(ndarray::array![[3.0_f32, 3.0]].view());
        let c = std::f32::consts::FRAC_1_SQRT_2 * 10.0;
        assert!((s[[0, 0]] - c).abs() < 1e-5 && (s[[0, 1]] - c).abs() < 1e-5);
    }

    #[test]
    fn cosines_backward_matches_finite_differences() {
        let mut rng = Rng::new(6);
        let z = gaussian(4, 3, 1.0, &mut rng).mapv(f64::from);
        let w = gaussian(5, 3, 1.0, &mut rng).mapv(f64::from);
        // The loss sum(G * cos) for a fixed G has d loss / d cos = G.
        let g = gaussian(4, 5, 1.0, &mut rng);
        let loss = |z: &Array2<f64>, w: &Array2<f64>| {
            let c = cosines(z.mapv(|v| v as f32).view(), w.mapv(|v| v as f32).view());
            (&c * &g).mapv(f64::from).sum()
        };
        let (mut dz, mut dw) = (Array2::zeros((4, 3)), Array2::zeros((5, 3)));
        let (z32, w32) = (z.mapv(|v| v as f32), w.mapv(|v| v as f32));
        cosines_backward(
            z32.view(),
            w32.view(),
            g.view(),
            dz.view_mut(),
            dw.view_mut(),
        );
        let h = 1e-2;
        for (x, grad, is_z) in [(&z, &dz, true), (&w, &dw, false)] {
            for idx in 0..x.len() {
                let mut up = x.clone();
                up.as_slice_mut().unwrap()[idx] += h;
                let mut down = x.clone();
                down.as_slice_mut().unwrap()[idx] -= h;
                let (lu, ld) = if is_z {
                    (loss(&up, &w), loss(&down, &w))
                } else {
                    (loss(&z, &up), loss(&z, &down))
                };
                let fd = (lu - ld) / (2.0 * h);
                let got = f64::from(grad.as_slice().unwrap()[idx]);
                assert!(
                    (fd - got).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{is_z} {idx}: fd {fd} vs {got}"
                );
            }
        }
        // Scaling a feature vector leaves its cosines, so its gradient is
        // orthogonal to it.
        for (zr, dr) in z32.rows().into_iter().zip(dz.rows()) {
            assert!(zr.dot(&dr).abs() < 1e-5);
        }
    }

    #[test]
    fn adam_descends_a_quadratic() {
        let mut rng = Rng::new(4);
        let x = gaussian(8, 3, 1.0, &mut rng);
        let mut net = Net::new(3, 2, Body::Hidden(4), Head::Linear, &mut rng);
        let first = half_square(&mut net, x.view());
        let opt = Adam {
            lr: 1e-2,
            ..Adam::default()
        };
        for _ in 0..200 {
            net.features(x.view());
            let l = net.logits();
            net.backward_logits(l.view());
            net.step(&opt);
        }
        let last = half_square(&mut net, x.view());
        assert!(last < 0.05 * first, "{first} -> {last}");
    }
}
