"""Times Keras on the bench's LSTM(64) configuration; run by benches/train.rs.

Usage: python keras_train.py N_POINTS WINDOW HIDDEN BATCH STEPS
Prints one JSON line: {"ms_per_step": ..., "tensorflow": ..., "keras": ...}.
The same series recipe as the Rust side (a noisy sine, min-max scaled, next-value targets);
the noise differs in its draws, which does not change the cost of a step.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402


def main():
    n_points, window, hidden, batch, steps = (int(a) for a in sys.argv[1:6])
    rng = np.random.default_rng(0)
    t = np.arange(n_points, dtype=np.float64)
    series = np.sin(t * 2 * np.pi / 500.0) + rng.normal(0.0, 0.1, size=n_points)
    series = (series - series.min()) / (series.max() - series.min())
    n = n_points - window
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
    # The first fit traces and compiles the train function; only the second is timed.
    model.fit(ds, epochs=1, steps_per_epoch=20, verbose=0)
    start = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "ms_per_step": elapsed / steps * 1e3,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
