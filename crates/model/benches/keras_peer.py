"""Keras on the train benchmark's two workloads, on the data benches/train.rs hands it.

Usage: python keras_peer.py CONFIG_JSON
CONFIG_JSON holds:
  tutorial_series   the tutorial's 12 points (the same the Rust side fits)
  tutorial_repeats  timed fits after the first one
  series_file       the LSTM(64) series: raw little-endian float64, as the Rust side wrote it
  window, hidden, batch, steps
Prints one JSON line: tutorial_first_ms, tutorial_ms (each fit's time), tutorial_losses,
ms_per_step, lstm_loss, tensorflow, keras.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402


def tutorial_fit(series):
    """The tutorial as written: tf.data max scaling, 2-step windows, the next window as target,
    LSTM(8) + Dense(1), Adam, MAE, 5 epochs x 10 steps of batch 1. Timed from the pipeline on,
    as the Rust side times its data preparation too; a fresh model each time, as a user gets."""
    n_steps, n_samples = 2, len(series) - 2
    start = time.perf_counter()
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(series, dtype=np.float64))
    v_max = dataset.reduce(tf.constant(0.0, tf.float64), tf.math.maximum)
    dataset = dataset.map(lambda v: (v / v_max))
    dataset = dataset.map(lambda v: tf.expand_dims(v, -1))
    dataset = dataset.window(n_steps, shift=1, drop_remainder=True)
    dataset = dataset.flat_map(lambda d: d.batch(n_steps))
    x = dataset.take(n_samples)
    y = dataset.skip(1).take(n_samples)
    train = tf.data.Dataset.zip((x, y)).batch(1).repeat(10)
    model = keras.Sequential(
        [keras.Input(shape=(n_steps, 1)), keras.layers.LSTM(8), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mae")
    history = model.fit(train, epochs=5, steps_per_epoch=10, verbose=0)
    elapsed = time.perf_counter() - start
    keras.backend.clear_session()
    return elapsed * 1e3, [float(v) for v in history.history["loss"]]


def lstm_ms_per_step(series, window, hidden, batch, steps):
    """LSTM(hidden) + Dense(1) on next-value targets of min-max scaled windows, Adam, MAE."""
    series = (series - series.min()) / (series.max() - series.min())
    n = len(series) - window
    idx = np.arange(window)[None, :] + np.arange(n)[:, None]
    x = series[idx].astype(np.float32)[..., None]
    y = series[window:].astype(np.float32)[:, None]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).repeat()
    ds = ds.prefetch(tf.data.AUTOTUNE)

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input(shape=(window, 1)), keras.layers.LSTM(hidden), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mae")
    # The first fit traces and compiles the train function (the Rust side warms up as well);
    # only the second is timed.
    model.fit(ds, epochs=1, steps_per_epoch=20, verbose=0)
    start = time.perf_counter()
    history = model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    elapsed = time.perf_counter() - start
    return elapsed / steps * 1e3, float(history.history["loss"][-1])


def main():
    config = json.loads(sys.argv[1])
    first_ms, losses = tutorial_fit(config["tutorial_series"])
    times = [tutorial_fit(config["tutorial_series"])[0] for _ in range(config["tutorial_repeats"])]
    series = np.fromfile(config["series_file"], dtype="<f8")
    ms, loss = lstm_ms_per_step(
        series, config["window"], config["hidden"], config["batch"], config["steps"]
    )
    print(
        json.dumps(
            {
                "tutorial_first_ms": first_ms,
                "tutorial_ms": times,
                "tutorial_losses": losses,
                "ms_per_step": ms,
                "lstm_loss": loss,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
