//! One reference case: its parsed fields, readers of its options (which
//! reject unknown options) and arrays, what a loss computes on it, and the
//! comparison of that with the case.

use std::cell::RefCell;
use std::collections::BTreeSet;

use classloss::{Differentiable, Float, Loss, Reduction};
use ndarray::{Array, Array1, Array2, ArrayD, ArrayView, Dimension, Ix1, Ix2};
use serde_json::{Map, Value};

use crate::reference::{Tol, array_f64, array_usize, cast, compare, scalar, widen};

pub struct Case {
    pub id: String,
    pub loss: String,
    pub dtype: String,
    pub options: Map<String, Value>,
    pub inputs: Map<String, Value>,
    pub targets: Map<String, Value>,
    pub expected: Map<String, Value>,
    used: RefCell<BTreeSet<String>>,
}

impl Case {
    pub fn parse(raw: &Value) -> Result<Case, String> {
        let obj = |k: &str| -> Result<Map<String, Value>, String> {
            Ok(raw[k]
                .as_object()
                .ok_or(format!("missing object {k:?}"))?
                .clone())
        };
        let string = |k: &str| -> Result<String, String> {
            Ok(raw[k]
                .as_str()
                .ok_or(format!("missing string {k:?}"))?
                .to_string())
        };
        Ok(Case {
            id: string("id")?,
            loss: string("loss")?,
            dtype: string("dtype")?,
            options: obj("options")?,
            inputs: obj("inputs")?,
            targets: obj("targets")?,
            expected: obj("expected")?,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    fn take(&self, key: &str) -> Option<&Value> {
        self.used.borrow_mut().insert(key.to_string());
        self.options.get(key).filter(|v| !v.is_null())
    }

    /// The `reduction` option (default mean).
    pub fn reduction(&self) -> Result<Reduction, String> {
        match self.take("reduction") {
            None => Ok(Reduction::Mean),
            Some(v) => Reduction::parse(v.as_str().ok_or("reduction: not a string")?)
                .map_err(|e| e.to_string()),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, String> {
        self.take(key)
            .map(|v| v.as_f64().ok_or(format!("option {key}: not a number")))
            .transpose()
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, String> {
        self.take(key)
            .map(|v| {
                v.as_u64()
                    .map(|u| u as usize)
                    .ok_or(format!("option {key}: not a non-negative integer"))
            })
            .transpose()
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, String> {
        self.take(key)
            .map(|v| v.as_bool().ok_or(format!("option {key}: not a bool")))
            .transpose()
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, String> {
        self.take(key)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or(format!("option {key}: not a string"))
            })
            .transpose()
    }

    pub fn opt_array(&self, key: &str) -> Result<Option<ArrayD<f64>>, String> {
        self.take(key).map(array_f64).transpose()
    }

    /// The option `key` as a list of node indices, `null` for none (a
    /// class tree's parents).
    pub fn opt_parents(&self, key: &str) -> Result<Option<Vec<Option<usize>>>, String> {
        let Some(list) = self.take(key) else {
            return Ok(None);
        };
        let list = list
            .as_array()
            .ok_or(format!("option {key:?}: not a list"))?;
        list.iter()
            .map(|v| match v {
                Value::Null => Ok(None),
                v => v
                    .as_u64()
                    .map(|p| Some(p as usize))
                    .ok_or(format!("option {key:?}: {v} is not a node index")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `loss` with the number option `key` set by `set`, if the case has it.
    pub fn with_f64<L>(
        &self,
        loss: L,
        key: &str,
        set: impl FnOnce(L, f64) -> classloss::Result<L>,
    ) -> Result<L, String> {
        match self.opt_f64(key)? {
            Some(v) => set(loss, v).map_err(|e| e.to_string()),
            None => Ok(loss),
        }
    }

    /// The array option `key` as a vector (one entry per class).
    pub fn opt_vector<F: Float>(&self, key: &str) -> Result<Option<Array1<F>>, String> {
        let a = self.opt_array(key)?;
        Ok(a.map(|a| Array1::from_iter(a.iter().map(|&v| F::lit(v)))))
    }

    /// Fails on any option the runner did not read.
    pub fn no_unknown_options(&self) -> Result<(), String> {
        let used = self.used.borrow();
        match self.options.keys().find(|k| !used.contains(*k)) {
            Some(k) => Err(format!("unknown option {k:?} for loss {:?}", self.loss)),
            None => Ok(()),
        }
    }

    pub fn input(&self, name: &str) -> Result<ArrayD<f64>, String> {
        array_f64(
            self.inputs
                .get(name)
                .ok_or(format!("missing input {name:?}"))?,
        )
    }

    pub fn target_f64(&self, name: &str) -> Result<ArrayD<f64>, String> {
        array_f64(
            self.targets
                .get(name)
                .ok_or(format!("missing target {name:?}"))?,
        )
    }

    pub fn target_labels(&self, name: &str) -> Result<ArrayD<usize>, String> {
        array_usize(
            self.targets
                .get(name)
                .ok_or(format!("missing target {name:?}"))?,
        )
    }

    pub fn has_target(&self, name: &str) -> bool {
        self.targets.contains_key(name)
    }

    /// The input `name` as a matrix in the case's element type.
    pub fn matrix<F: Float>(&self, name: &str) -> Result<Array2<F>, String> {
        cast::<F>(&self.input(name)?)
            .into_dimensionality::<Ix2>()
            .map_err(|e| format!("input {name:?}: {e}"))
    }

    /// The float target `name` as a vector in the case's element type.
    pub fn target_vector<F: Float>(&self, name: &str) -> Result<Array1<F>, String> {
        cast::<F>(&self.target_f64(name)?)
            .into_dimensionality::<Ix1>()
            .map_err(|e| format!("target {name:?}: {e}"))
    }

    /// The `label_sets` target: one list of classes per sample.
    pub fn label_sets(&self) -> Result<Vec<Vec<usize>>, String> {
        let sets = self
            .targets
            .get("label_sets")
            .and_then(|v| v.as_array())
            .ok_or("missing target \"label_sets\" (a list of lists)")?;
        sets.iter()
            .map(|set| {
                let set = set.as_array().ok_or("label_sets: a set is not a list")?;
                set.iter()
                    .map(|c| c.as_u64().map(|c| c as usize))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| format!("label_sets: not a class index in {set:?}"))
            })
            .collect()
    }

    /// The `(N)` labels.
    pub fn labels_1d(&self) -> Result<Array1<usize>, String> {
        self.target_labels("labels")?
            .into_dimensionality::<Ix1>()
            .map_err(|e| format!("labels: {e}"))
    }
}

/// Runs an element-wise loss (an input and float targets of one shape `D`)
/// on the case's arrays `input` and `target`, once every option was read.
pub fn on_elements<F, D, L>(
    case: &Case,
    loss: L,
    input: &str,
    target: &str,
) -> Result<Outcome, String>
where
    F: Float,
    D: Dimension,
    L: for<'a> Differentiable<
            F,
            Input<'a> = ArrayView<'a, F, D>,
            Target<'a> = ArrayView<'a, F, D>,
            PerSample = Array<F, D>,
            Grad = Array<F, D>,
        >,
{
    case.no_unknown_options()?;
    let x = cast::<F>(&case.input(input)?).into_dimensionality::<D>();
    let t = cast::<F>(&case.target_f64(target)?).into_dimensionality::<D>();
    let (x, t) = (x.map_err(|e| e.to_string())?, t.map_err(|e| e.to_string())?);
    outcome(&loss, x.view(), t.view(), grad(input))
}

/// A gradient of one array, named.
pub fn grad<F: Float, D: Dimension>(name: &str) -> impl FnOnce(Array<F, D>) -> Grads {
    let name = name.to_string();
    move |g| vec![(name, widen(&g.into_dyn()))]
}

/// Gradients by input name.
pub type Grads = Vec<(String, ArrayD<f64>)>;

/// The value of `loss` on `input` and `target`, and the per-sample values
/// for `none`.
pub fn values<'a, F, S, L>(
    loss: &L,
    input: L::Input<'a>,
    target: L::Target<'a>,
) -> Result<Outcome, String>
where
    F: Float,
    S: Dimension,
    L: Loss<F, PerSample = Array<F, S>>,
{
    let value = loss
        .forward(input.clone(), target.clone())
        .map_err(|e| e.to_string())?;
    let per = match loss.reduction() {
        Reduction::None => Some(loss.per_sample(input, target).map_err(|e| e.to_string())?),
        Reduction::Mean | Reduction::Sum => None,
    };
    Ok(Outcome {
        loss: Some(value.as_f64()),
        per_sample: per.map(|p| widen(&p.into_dyn())),
        ..Outcome::default()
    })
}

/// [`values`] and the gradients (named by `grads`), whose fused value must
/// equal `forward`'s.
pub fn outcome<'a, F, S, L>(
    loss: &L,
    input: L::Input<'a>,
    target: L::Target<'a>,
    grads: impl FnOnce(L::Grad) -> Grads,
) -> Result<Outcome, String>
where
    F: Float,
    S: Dimension,
    L: Differentiable<F, PerSample = Array<F, S>>,
{
    let mut out = values(loss, input.clone(), target.clone())?;
    let (fused, grad) = loss
        .forward_backward(input, target)
        .map_err(|e| e.to_string())?;
    let value = out.loss.unwrap_or_default();
    if fused.as_f64() != value {
        return Err(format!("fused value {fused} differs from forward {value}"));
    }
    out.grads = grads(grad);
    Ok(out)
}

/// What a runner computed for a case, widened to `f64`.
#[derive(Default)]
pub struct Outcome {
    /// The reduced value (`forward`).
    pub loss: Option<f64>,
    /// The unreduced values.
    pub per_sample: Option<ArrayD<f64>>,
    /// Gradients by input name.
    pub grads: Vec<(String, ArrayD<f64>)>,
    /// Other outputs compared with `expected[name]` (centers, weights).
    pub extra: Vec<(String, ArrayD<f64>)>,
}

impl Outcome {
    /// Compares with the case's expectations; returns the worst error in
    /// units of tolerance.
    pub fn check(&self, case: &Case) -> Result<f64, String> {
        let tol = Tol::from_dtype(&case.dtype)?;
        let mut worst = 0.0_f64;
        let mut compared = 0;
        if let Some(e) = case.expected.get("loss").and_then(Value::as_f64) {
            let got = self.loss.ok_or("the runner gave no loss value")?;
            worst = worst.max(compare("loss", &scalar(got), &scalar(e), tol)?);
            compared += 1;
        }
        if let Some(e) = case.expected.get("per_sample").filter(|v| !v.is_null()) {
            let got = self
                .per_sample
                .as_ref()
                .ok_or("the runner gave no per-sample values")?;
            worst = worst.max(compare("per_sample", got, &array_f64(e)?, tol)?);
            compared += 1;
        }
        if let Some(grads) = case.expected.get("grad").and_then(Value::as_object) {
            for (name, e) in grads {
                let got = self
                    .grads
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, g)| g)
                    .ok_or(format!("the runner gave no gradient for {name:?}"))?;
                worst = worst.max(compare(&format!("grad[{name}]"), got, &array_f64(e)?, tol)?);
                compared += 1;
            }
        }
        for (name, got) in &self.extra {
            let e = case
                .expected
                .get(name)
                .ok_or(format!("expected has no {name:?}"))?;
            worst = worst.max(compare(name, got, &array_f64(e)?, tol)?);
            compared += 1;
        }
        for key in case.expected.keys() {
            let known = ["loss", "per_sample", "grad"].contains(&key.as_str())
                || self.extra.iter().any(|(n, _)| n == key);
            if !known {
                return Err(format!(
                    "expected field {key:?} is not checked by the runner"
                ));
            }
        }
        if compared == 0 {
            return Err("nothing was compared".into());
        }
        Ok(worst)
    }
}
