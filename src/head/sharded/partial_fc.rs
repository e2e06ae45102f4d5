//! Partial FC on a class-sharded angular head: each process trains on the
//! classes it sampled from its own shard ([`PartialFc::sample_shard`]), as
//! insightface's model-parallel `PartialFC_V2`.
//!
//! The processes' samples, in rank order, are the classes of one sharded
//! head: one all-reduce of `P + 1` `f64` gives each process the offset of
//! its sample among them (and whether a process failed its checks), one
//! of `N` `f64` the labels' places in them (each from the process whose
//! shard holds the label). Then the sharded head runs on the gathered
//! rows.
//!
//! [`PartialFc::sample_shard`]: crate::PartialFc::sample_shard

use ndarray::Array1;

use super::{ClassShard, ClassSharded};
use crate::base::labels::Labels;
use crate::base::loss::{Call, Compute};
use crate::base::reduction::Totals;
use crate::base::validate::{check_class_vector, expect_shape};
use crate::distributed::{Collective, ReduceOp};
use crate::engine::angular::{Embeddings, EmbeddingsAndLabels, Sealed};
use crate::head::partial_fc::Sampled;
use crate::head::{AngularMarginHead, OnSampledClasses, SampledEmbeddings};
use crate::{Error, Float, Result};

const WHAT: &str = "ClassSharded<OnSampledClasses<AngularMarginHead>>";

impl<F: Float, L: Sealed + Clone, C: Collective> Compute<F>
    for ClassSharded<OnSampledClasses<AngularMarginHead<L>>, C>
{
    type Sig = Sampled<EmbeddingsAndLabels>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input,
            target: labels,
            grad,
            per,
        } = call;
        let SampledEmbeddings {
            embeddings,
            weight,
            classes: sample,
        } = input;
        let (shard, collective) = (self.shard, &self.collective);
        let (p, rank) = (collective.size(), collective.rank());
        let (n, d) = embeddings.dim();
        // This process's rows of the sample, and the labels' places in it.
        let local = (|| {
            expect_shape("weight", weight.shape(), &[shard.len(), d])?;
            check_class_vector("classes", sample.classes(), shard.len())?;
            labels.check_rows(n, shard.classes())?;
            let mut places = vec![None; n];
            for (i, y) in labels.classes(None).enumerate() {
                let Some(c) = y.and_then(|y| shard.local(y)) else {
                    continue;
                };
                places[i] = Some(sample.position(c).ok_or(Error::InvalidTarget {
                    what: "labels",
                    index: vec![i],
                    value: c as f64,
                    expected: "a class among the shard's sampled classes",
                })?);
            }
            Ok((sample.gather(weight)?, places))
        })();
        let mut counts = vec![0.0; p + 1];
        match &local {
            Ok(_) => counts[rank] = sample.len() as f64,
            Err(_) => counts[p] = 1.0,
        }
        collective.all_reduce_f64(ReduceOp::Sum, &mut counts);
        let failed = counts[p] as usize;
        let (gathered, places) = local?;
        if failed > 0 {
            return Err(Error::PeerFailed {
                what: WHAT,
                failed,
                processes: p,
            });
        }
        let offset = counts[..rank].iter().sum::<f64>() as usize;
        let total = counts[..p].iter().sum::<f64>() as usize;
        let mut remapped: Vec<f64> = places
            .iter()
            .map(|place| place.map_or(0.0, |k| (offset + k) as f64))
            .collect();
        collective.all_reduce_f64(ReduceOp::Sum, &mut remapped);
        let remapped: Array1<usize> = remapped.into_iter().map(|y| y as usize).collect();
        let sampled = ClassSharded::new(
            self.head.head().clone(),
            collective,
            ClassShard::new(offset, sample.len(), total.max(1))?,
        );
        sampled.compute(Call {
            input: Embeddings {
                embeddings,
                weight: gathered.view(),
            },
            target: Labels::from(&remapped),
            grad,
            per,
        })
    }
}
