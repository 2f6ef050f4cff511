//! The tutorial-faithful pipeline end to end, save/load, anomalies, and every bad-input error.

use promlearn_model::{
    Dataset, Error, FitOptions, Forecaster, KerasWeights, ModelConfig, SavedThreshold, ScaleKind,
    Scaler, TargetMode, windows,
};

/// 12 samples shaped like go_memstats_sys_bytes: ~70 MB growing in steps.
fn memstats() -> Vec<f64> {
    (0..12)
        .map(|i| 70_337_544.0 + 262_144.0 * ((i * 2 + 1) / 3) as f64)
        .collect()
}

#[test]
fn tutorial_pipeline_trains_five_epochs_and_the_loss_falls() {
    let series = memstats();
    let scaler = Scaler::fit(&series, ScaleKind::Max).unwrap();
    let ds = Dataset::from_series(
        &scaler.transform(&series).unwrap(),
        2,
        TargetMode::TutorialNextWindow,
    )
    .unwrap();
    let batches = ds.repeat(10).batch(1).unwrap();
    let mut model = Forecaster::new(ModelConfig::tutorial()).unwrap();
    let options = FitOptions {
        epochs: 5,
        steps_per_epoch: Some(10),
    };
    let history = model.fit(&batches, &options).unwrap();
    assert_eq!(history.epoch_losses.len(), 5);
    assert_eq!(history.step_losses.len(), 50);
    assert!(
        history.epoch_losses.windows(2).all(|w| w[1] < w[0]),
        "{:?}",
        history.epoch_losses
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!((history.epoch_losses[0] - mean(&history.step_losses[..10])).abs() < 1e-12);
    let eval = model.evaluate(&ds.batch(1).unwrap()).unwrap();
    assert!(eval < history.epoch_losses[0]);
}

#[test]
fn shuffle_is_seeded_and_a_permutation() {
    let series: Vec<f64> = (0..40).map(|i| i as f64).collect();
    let ds = Dataset::from_series(&series, 3, TargetMode::NextValue).unwrap();
    let a = ds.shuffle(9);
    assert_eq!(a, ds.shuffle(9));
    assert_ne!(a, ds);
    let mut firsts: Vec<f64> = (0..a.len()).map(|i| a.input(i)[0]).collect();
    firsts.sort_by(f64::total_cmp);
    assert_eq!(firsts, (0..37).map(|i| i as f64).collect::<Vec<_>>());
    // Pairs stay together.
    assert!((0..a.len()).all(|i| a.target(i)[0] == a.input(i)[0] + 3.0));
}

#[test]
fn min_max_scaler_round_trips() {
    let s = Scaler::fit(&[-2.0, 0.0, 6.0], ScaleKind::MinMax).unwrap();
    let scaled = s.transform(&[-2.0, 2.0, 6.0]).unwrap();
    assert_eq!(scaled, vec![0.0, 0.5, 1.0]);
    assert_eq!(s.inverse_transform(&scaled), vec![-2.0, 2.0, 6.0]);
}

#[test]
fn save_load_keeps_predictions_scaler_and_threshold() {
    let series: Vec<f64> = (0..300)
        .map(|i| 100.0 + 10.0 * (i as f64 / 7.0).sin())
        .collect();
    let scaler = Scaler::fit(&series, ScaleKind::MinMax).unwrap();
    let ds = Dataset::from_series(
        &scaler.transform(&series).unwrap(),
        8,
        TargetMode::NextValue,
    )
    .unwrap();
    let mut config = ModelConfig::forecasting(8, 6);
    config.learning_rate = 0.01;
    let mut model = Forecaster::new(config).unwrap();
    model.set_scaler(scaler);
    let options = FitOptions {
        epochs: 3,
        steps_per_epoch: None,
    };
    model
        .fit(&ds.shuffle(1).batch(16).unwrap(), &options)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    // A model.json written by an older `promlearn train` carries the threshold it learned;
    // it loads, and saving the loaded model keeps it.
    let json = dir.path().join("model.json");
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.contains("\"threshold\": null"), "{text}");
    let text = text.replace(
        "\"threshold\": null",
        "\"threshold\": {\"quantile\": 0.99, \"value\": 0.0625}",
    );
    std::fs::write(&json, text).unwrap();
    let threshold = SavedThreshold {
        quantile: 0.99,
        value: 0.0625,
    };
    let loaded = Forecaster::load(dir.path()).unwrap();
    assert_eq!(loaded.config(), model.config());
    assert_eq!(loaded.scaler(), Some(&scaler));
    assert_eq!(loaded.threshold(), Some(&threshold));
    let again = tempfile::tempdir().unwrap();
    loaded.save(again.path()).unwrap();
    assert_eq!(
        Forecaster::load(again.path()).unwrap().threshold(),
        Some(&threshold)
    );
    let f1 = model.forecast(&series, 5).unwrap();
    assert_eq!(f1, loaded.forecast(&series, 5).unwrap());
    assert!(
        f1.iter().all(|v| (60.0..140.0).contains(v)),
        "forecast in original units: {f1:?}"
    );
}

#[test]
fn load_rejects_missing_and_mismatched_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Forecaster::load(dir.path()),
        Err(Error::Io { .. })
    ));
    let model = Forecaster::new(ModelConfig::forecasting(4, 3)).unwrap();
    model.save(dir.path()).unwrap();
    let json = dir.path().join("model.json");
    let text = std::fs::read_to_string(&json)
        .unwrap()
        .replace("\"hidden\": 3", "\"hidden\": 5");
    std::fs::write(&json, text).unwrap();
    let err = Forecaster::load(dir.path()).unwrap_err();
    assert!(matches!(err, Error::BadModelFile { .. }), "{err}");
    assert!(err.to_string().contains("LSTM(5)"), "{err}");
}

#[test]
fn bad_input_gives_clear_typed_errors() {
    let too_short =
        Dataset::from_series(&[1.0, 2.0], 2, TargetMode::TutorialNextWindow).unwrap_err();
    assert!(
        matches!(
            too_short,
            Error::TooFewSamples {
                needed: 3,
                got: 2,
                ..
            }
        ),
        "{too_short}"
    );
    assert!(too_short.to_string().contains("longer time range"));
    assert!(matches!(
        windows(&[1.0], 2, 1),
        Err(Error::TooFewSamples { .. })
    ));
    assert!(matches!(
        windows(&[1.0], 0, 1),
        Err(Error::InvalidConfig(_))
    ));

    let constant = Scaler::fit(&[5.0; 10], ScaleKind::MinMax).unwrap_err();
    assert!(
        matches!(constant, Error::Unscalable { .. }) && constant.to_string().contains("constant")
    );
    // The tutorial's `v / max(v)` of a flat series is all ones, not an error.
    let flat = Scaler::fit(&[5.0; 10], ScaleKind::Max).unwrap();
    assert_eq!(flat.transform(&[5.0; 3]).unwrap(), vec![1.0; 3]);
    let zeros = Scaler::fit(&[0.0; 10], ScaleKind::MinMax).unwrap_err();
    assert!(matches!(zeros, Error::Unscalable { .. }));
    let non_positive = Scaler::fit(&[-3.0, -1.0, 0.0], ScaleKind::Max).unwrap_err();
    assert!(
        non_positive.to_string().contains("MinMax"),
        "{non_positive}"
    );

    let nan = Scaler::fit(&[1.0, f64::NAN, 2.0], ScaleKind::Max).unwrap_err();
    assert!(matches!(nan, Error::NonFinite { index: 1, .. }), "{nan}");
    let inf = Dataset::from_series(&[0.1, 0.2, f64::INFINITY, 0.3], 2, TargetMode::NextValue)
        .unwrap_err();
    assert!(matches!(inf, Error::NonFinite { index: 2, .. }));
    let model = Forecaster::new(ModelConfig::forecasting(2, 4)).unwrap();
    assert!(matches!(
        model.predict(&[vec![0.1, f64::NAN]]),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        model.forecast(&[f64::NAN, 0.1], 1),
        Err(Error::NonFinite { .. })
    ));

    let mismatch = Dataset::zip(&[vec![0.1, 0.2], vec![0.3]], &[vec![0.4], vec![0.5]]).unwrap_err();
    assert!(
        matches!(mismatch, Error::ShapeMismatch { .. }),
        "{mismatch}"
    );
    assert!(matches!(
        model.predict(&[vec![0.1, 0.2, 0.3]]),
        Err(Error::ShapeMismatch { .. })
    ));

    // A next-window dataset for a next-value model: refused before any training.
    let ds =
        Dataset::from_series(&[0.1, 0.2, 0.3, 0.4], 2, TargetMode::TutorialNextWindow).unwrap();
    let mut model = Forecaster::new(ModelConfig::forecasting(2, 4)).unwrap();
    let err = model
        .fit(&ds.batch(1).unwrap(), &FitOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { .. }) && err.to_string().contains("target_mode"),
        "{err}"
    );

    let mut bad = ModelConfig::tutorial();
    bad.hidden = 0;
    assert!(matches!(Forecaster::new(bad), Err(Error::InvalidConfig(_))));
}

#[test]
fn a_diverging_loss_stops_training_with_a_message() {
    // Saturated gates give h ≈ 0.76 in every unit; a Dense kernel at f32::MAX then overflows.
    let h = 8;
    let mut bias = vec![10.0f32; 4 * h];
    bias[h..2 * h].fill(0.0);
    let weights = KerasWeights {
        kernel: vec![0.0; 4 * h],
        recurrent_kernel: vec![0.0; h * 4 * h],
        bias,
        dense_kernel: vec![f32::MAX; h],
        dense_bias: vec![0.0],
    };
    let mut model = Forecaster::from_keras_weights(ModelConfig::tutorial(), &weights).unwrap();
    let ds =
        Dataset::from_series(&[0.5, 0.6, 0.7, 0.8], 2, TargetMode::TutorialNextWindow).unwrap();
    let before = model.keras_weights();
    let err = model
        .fit(&ds.batch(1).unwrap(), &FitOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Diverged {
                epoch: 1,
                step: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("learning rate"), "{err}");
    assert_eq!(
        model.keras_weights(),
        before,
        "no update from a non-finite loss"
    );
}
