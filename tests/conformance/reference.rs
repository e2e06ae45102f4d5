//! Reading the reference cases' arrays, converting them to and from the
//! element type under test, and comparing with the reference README's
//! tolerances.

use ndarray::{ArrayD, Dimension, IxDyn};
use serde_json::Value;

/// Flattens a nested JSON list into its shape and values.
fn flatten(
    v: &Value,
    shape: &mut Vec<usize>,
    depth: usize,
    out: &mut Vec<f64>,
) -> Result<(), String> {
    match v {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            } else if shape[depth] != items.len() {
                return Err(format!("ragged array at depth {depth}"));
            }
            for item in items {
                flatten(item, shape, depth + 1, out)?;
            }
            Ok(())
        }
        Value::Number(n) => {
            out.push(n.as_f64().ok_or("number out of range")?);
            Ok(())
        }
        Value::Bool(b) => {
            out.push(if *b { 1.0 } else { 0.0 });
            Ok(())
        }
        other => Err(format!("expected a number or list, got {other}")),
    }
}

/// A nested JSON list as an `f64` array of any rank.
pub fn array_f64(v: &Value) -> Result<ArrayD<f64>, String> {
    let mut shape = Vec::new();
    let mut data = Vec::new();
    flatten(v, &mut shape, 0, &mut data)?;
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| e.to_string())
}

/// A nested JSON list of non-negative integers as a label array.
pub fn array_usize(v: &Value) -> Result<ArrayD<usize>, String> {
    let a = array_f64(v)?;
    if a.iter().any(|&x| x < 0.0 || x.fract() != 0.0) {
        return Err("labels must be non-negative integers".into());
    }
    Ok(a.mapv(|x| x as usize))
}

/// Converts an `f64` array to the element type under test.
pub fn cast<F: classloss::Float>(a: &ArrayD<f64>) -> ArrayD<F> {
    a.mapv(F::lit)
}

/// Widens a result array to `f64`.
pub fn widen<F: classloss::Float>(a: &ArrayD<F>) -> ArrayD<f64> {
    a.mapv(|x| x.as_f64())
}

/// Tolerances of the reference README.
#[derive(Clone, Copy, Debug)]
pub enum Tol {
    F64,
    F32,
}

impl Tol {
    pub fn from_dtype(dtype: &str) -> Result<Tol, String> {
        match dtype {
            "f64" => Ok(Tol::F64),
            "f32" => Ok(Tol::F32),
            other => Err(format!("unknown dtype {other:?}")),
        }
    }
}

/// Largest error of `got` against `expected`, or a message naming the first
/// element out of tolerance.
pub fn compare(
    what: &str,
    got: &ArrayD<f64>,
    expected: &ArrayD<f64>,
    tol: Tol,
) -> Result<f64, String> {
    if got.shape() != expected.shape() {
        return Err(format!(
            "{what}: shape {:?}, expected {:?}",
            got.shape(),
            expected.shape()
        ));
    }
    let scale = expected.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let (rtol, atol) = match tol {
        Tol::F64 => (1e-9, 1e-12),
        Tol::F32 => (1e-4, 1e-5 * scale),
    };
    let mut worst = 0.0_f64;
    for ((idx, &g), &e) in got.indexed_iter().zip(expected.iter()) {
        let err = (g - e).abs();
        if err.is_nan() || err > atol + rtol * e.abs() {
            return Err(format!(
                "{what}{:?}: got {g:e}, expected {e:e} (error {err:.3e})",
                idx.slice()
            ));
        }
        worst = worst.max(err / (atol + rtol * e.abs()).max(f64::MIN_POSITIVE));
    }
    Ok(worst)
}

/// A scalar as a 0-d array, to compare with the same rule.
pub fn scalar(x: f64) -> ArrayD<f64> {
    ArrayD::from_elem(IxDyn(&[]), x)
}
