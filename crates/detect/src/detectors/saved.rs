//! A fitted model as plain data, for a service to write to disk and read back after a restart
//! (`promlearn watch`'s `state_dir`): what each detector learned, nothing else.

use std::sync::Arc;

use promlearn_model::{Forecaster, KerasWeights, ModelConfig, Scaler};
use serde::{Deserialize, Serialize};

use crate::detectors::knn::{KnnSettings, PatternSet};
use crate::detectors::rolling::DayProfile;
use crate::detectors::{DetectorSpec, Fitted, FittedKnn, FittedLstm, FittedRolling};
use crate::error::{Error, Result};

/// What a fitted model learned, as serde data: [`Fitted::to_saved`] makes one,
/// [`SavedModel::into_fitted`] turns it back into a model that judges exactly as the original
/// did. The encoding is the caller's (a file format with its own version); reading back checks
/// that the parts fit together, so a damaged or foreign value is an error, never a panic. The
/// spec inside is carried as its JSON text, so formats that do not describe themselves
/// (postcard, bincode) carry it as well as JSON does.
///
/// ```
/// use promlearn_detect::DetectorSpec;
///
/// let t: Vec<i64> = (0..200).map(|i| i * 1000).collect();
/// let v: Vec<f64> = (0..200).map(|i| (i % 7) as f64).collect();
/// let fitted = DetectorSpec::from_name("mad")?.fit(&t, &v)?;
/// let saved = fitted.to_saved().expect("the detector crate's models can be saved");
/// let text = serde_json::to_string(&saved)?;
/// let back = serde_json::from_str::<promlearn_detect::SavedModel>(&text)?.into_fitted()?;
/// assert_eq!(back.spec(), fitted.spec());
/// assert_eq!(back.analyse(&t, &v)?.anomalous, fitted.analyse(&t, &v)?.anomalous);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedModel(Repr);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Repr {
    Rolling {
        #[serde(with = "spec_text")]
        spec: DetectorSpec,
        min_half_width: f64,
        longest_flat: u32,
        profile: Option<DayProfile>,
    },
    Knn {
        #[serde(with = "spec_text")]
        spec: DetectorSpec,
        centre: f64,
        scale: f64,
        fine: PatternSet,
        coarse: Option<PatternSet>,
        low: f64,
        high: f64,
        longest_flat: u32,
    },
    Lstm {
        #[serde(with = "spec_text")]
        spec: DetectorSpec,
        config: ModelConfig,
        weights: KerasWeights,
        scaler: Scaler,
        error_quantile: f64,
        min_half_width: f64,
        half_width: f64,
        training_pairs: usize,
        final_loss: Option<f64>,
    },
}

/// A spec as its JSON text: `DetectorSpec` is an internally tagged enum, which only formats
/// that describe themselves can read back.
mod spec_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};

    use crate::DetectorSpec;

    pub fn serialize<S: Serializer>(spec: &DetectorSpec, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&serde_json::to_string(spec).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DetectorSpec, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}

impl SavedModel {
    /// The settings the model was fitted with.
    pub fn spec(&self) -> &DetectorSpec {
        match &self.0 {
            Repr::Rolling { spec, .. } | Repr::Knn { spec, .. } | Repr::Lstm { spec, .. } => spec,
        }
    }

    /// The model again; errors when the parts do not fit together (a spec of another kind, an
    /// invalid setting, pattern tables or weights of the wrong size, a non-finite band).
    pub fn into_fitted(self) -> Result<Arc<dyn Fitted>> {
        let spec = self.spec().clone();
        let detector = spec.name();
        let bad = |reason: String| Error::Saved { detector, reason };
        spec.validate().map_err(|e| bad(e.to_string()))?;
        let finite = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(bad(format!("its {name} is {v}, not a finite number >= 0")))
            }
        };
        Ok(match self.0 {
            Repr::Rolling {
                spec,
                min_half_width,
                longest_flat,
                profile,
            } => {
                if matches!(spec, DetectorSpec::Knn { .. } | DetectorSpec::Lstm { .. }) {
                    return Err(bad("a rolling model with a non-rolling spec".into()));
                }
                finite("min_half_width", min_half_width)?;
                if let Some(p) = &profile {
                    p.check().map_err(bad)?;
                }
                Arc::new(FittedRolling {
                    spec,
                    min_half_width,
                    longest_flat,
                    profile,
                })
            }
            Repr::Knn {
                spec,
                centre,
                scale,
                fine,
                coarse,
                low,
                high,
                longest_flat,
            } => {
                let Some(settings) = KnnSettings::of(&spec) else {
                    return Err(bad("a knn model with another detector's spec".into()));
                };
                for (which, set) in [("fine", Some(&fine)), ("coarse", coarse.as_ref())] {
                    let Some(set) = set else { continue };
                    if let Some(problem) = set.problem(settings.window) {
                        return Err(bad(format!("its {which} patterns: {problem}")));
                    }
                    finite(&format!("{which} unit"), set.unit)?;
                    finite(&format!("{which} dev_unit"), set.dev_unit)?;
                }
                finite("scale", scale)?;
                if !centre.is_finite() {
                    return Err(bad(format!("its centre is {centre}")));
                }
                if !(low.is_finite() && high.is_finite() && low <= high) {
                    return Err(bad(format!("its range is {low} to {high}")));
                }
                Arc::new(FittedKnn {
                    spec,
                    settings,
                    centre,
                    scale,
                    fine,
                    coarse,
                    low,
                    high,
                    longest_flat,
                })
            }
            Repr::Lstm {
                spec,
                config,
                weights,
                scaler,
                error_quantile,
                min_half_width,
                half_width,
                training_pairs,
                final_loss,
            } => {
                let DetectorSpec::Lstm { window, hidden, .. } = spec else {
                    return Err(bad("an lstm model with another detector's spec".into()));
                };
                if config.n_steps != window || config.hidden != hidden {
                    return Err(bad(format!(
                        "its forecaster has window {} and {} units, its spec {window} and {hidden}",
                        config.n_steps, config.hidden
                    )));
                }
                for (name, v) in [
                    ("error_quantile", error_quantile),
                    ("min_half_width", min_half_width),
                    ("half_width", half_width),
                ] {
                    finite(name, v)?;
                }
                let mut model = Forecaster::from_keras_weights(config, &weights)
                    .map_err(|e| bad(e.to_string()))?;
                model.set_scaler(scaler);
                // As after a fit: one thread, so that a service's other work keeps its cores.
                model.set_threads(1);
                Arc::new(FittedLstm {
                    spec,
                    model,
                    scaler,
                    error_quantile,
                    min_half_width,
                    half_width,
                    training_pairs,
                    final_loss: final_loss.unwrap_or(f64::NAN),
                })
            }
        })
    }
}

impl FittedRolling {
    pub(crate) fn saved(&self) -> SavedModel {
        SavedModel(Repr::Rolling {
            spec: self.spec.clone(),
            min_half_width: self.min_half_width,
            longest_flat: self.longest_flat,
            profile: self.profile.clone(),
        })
    }
}

impl FittedKnn {
    pub(crate) fn saved(&self) -> SavedModel {
        SavedModel(Repr::Knn {
            spec: self.spec.clone(),
            centre: self.centre,
            scale: self.scale,
            fine: self.fine.clone(),
            coarse: self.coarse.clone(),
            low: self.low,
            high: self.high,
            longest_flat: self.longest_flat,
        })
    }
}

impl FittedLstm {
    pub(crate) fn saved(&self) -> SavedModel {
        SavedModel(Repr::Lstm {
            spec: self.spec.clone(),
            config: self.model.config().clone(),
            weights: self.model.keras_weights(),
            scaler: self.scaler,
            error_quantile: self.error_quantile,
            min_half_width: self.min_half_width,
            half_width: self.half_width,
            training_pairs: self.training_pairs,
            final_loss: self.final_loss.is_finite().then_some(self.final_loss),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> (Vec<i64>, Vec<f64>) {
        let t: Vec<i64> = (0..300).map(|i| 1_700_000_000_000 + i * 1000).collect();
        let v: Vec<f64> = (0..300)
            .map(|i| 50.0 + 5.0 * (i as f64 / 20.0).sin() + (i % 3) as f64)
            .collect();
        (t, v)
    }

    #[test]
    fn every_detector_judges_the_same_after_a_round_trip() {
        let (t, v) = history();
        let mut live = v.clone();
        live[250] *= 3.0;
        for name in crate::DETECTOR_NAMES {
            let mut spec = DetectorSpec::from_name(name).unwrap();
            if let DetectorSpec::Lstm { epochs, .. } = &mut spec {
                *epochs = 2;
            }
            let fitted = spec.fit(&t, &v).unwrap();
            let saved = fitted.to_saved().unwrap();
            let text = serde_json::to_string(&saved).unwrap();
            let back: SavedModel = serde_json::from_str(&text).unwrap();
            let back = back.into_fitted().unwrap();
            assert_eq!(back.spec(), &spec);
            let (a, b) = (
                fitted.analyse(&t, &live).unwrap(),
                back.analyse(&t, &live).unwrap(),
            );
            // serde_json's float parsing may be an ulp off; a binary encoding is exact.
            for (x, y) in a.score.iter().zip(&b.score) {
                let same = (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 * x.abs().max(1.0);
                assert!(same, "{name}: score {x} became {y}");
            }
            assert!(a.anomalous == b.anomalous, "{name}: flags differ");
            assert!(
                a.anomalous.iter().any(|f| *f),
                "{name}: the spike is flagged"
            );
        }
    }

    #[test]
    fn parts_that_do_not_fit_together_are_refused() {
        let (t, v) = history();
        let knn = DetectorSpec::from_name("knn").unwrap().fit(&t, &v).unwrap();
        let SavedModel(Repr::Knn {
            spec,
            centre,
            scale,
            fine,
            coarse,
            low,
            high,
            longest_flat,
        }) = knn.to_saved().unwrap()
        else {
            panic!("knn saves as knn")
        };
        let mut short = coarse.clone().expect("the history holds coarse patterns");
        short.drop_last_value();
        let truncated = SavedModel(Repr::Knn {
            spec: spec.clone(),
            centre,
            scale,
            fine,
            coarse: Some(short),
            low,
            high,
            longest_flat,
        });
        let err = truncated.into_fitted().unwrap_err().to_string();
        assert!(err.contains("coarse patterns"), "{err}");
        let foreign = SavedModel(Repr::Rolling {
            spec,
            min_half_width: 1.0,
            longest_flat: 1,
            profile: None,
        });
        assert!(foreign.into_fitted().is_err());
        let nan = SavedModel(Repr::Rolling {
            spec: DetectorSpec::from_name("zscore").unwrap(),
            min_half_width: f64::NAN,
            longest_flat: 1,
            profile: None,
        });
        let err = nan.into_fitted().unwrap_err().to_string();
        assert!(
            err.contains("min_half_width") && err.contains("refit"),
            "{err}"
        );
    }
}
