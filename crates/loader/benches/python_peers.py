"""The loader's Python peers on the benchmark's Prometheus; run by benches/loader.rs.

Usage: python python_peers.py CONFIG_JSON
CONFIG_JSON holds:
  url    the Prometheus the Rust side backfilled
  pac    {query, start, end, series, points, rounds}: prometheus-api-client's custom_query_range
         over [start, end] (seconds) at a 1 s step, every value turned into a float64 array, as
         the loader turns them into its matrix
  tfio   {query, offset_ms, length, series}: tensorflow-io's IODataset.from_prometheus, the
         tutorial's reader, iterated to the end
Prints one JSON line: pac/tfio samples and seconds (the median round for pac), and versions.
"""

import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def prometheus_api_client(url, c):
    from prometheus_api_client import PrometheusConnect

    client = PrometheusConnect(url=url, disable_ssl=True)
    start = datetime.fromtimestamp(c["start"], tz=timezone.utc)
    end = datetime.fromtimestamp(c["end"], tz=timezone.utc)
    rounds = []
    for _ in range(c["rounds"] + 1):
        t = time.perf_counter()
        result = client.custom_query_range(c["query"], start, end, "1s")
        columns = [np.asarray([v for _, v in r["values"]], dtype=np.float64) for r in result]
        rounds.append(time.perf_counter() - t)
        samples = sum(len(col) for col in columns)
        if len(result) != c["series"] or samples != c["series"] * c["points"]:
            sys.exit(f"prometheus-api-client read {len(result)} series, {samples} samples")
    # The first round warms the connection and Prometheus's caches, as on the Rust side.
    return samples, statistics.median(rounds[1:])


def tensorflow_io(url, c):
    import tensorflow as tf
    import tensorflow_io as tfio

    t = time.perf_counter()
    dataset = tfio.experimental.IODataset.from_prometheus(
        c["query"], c["length"], offset=c["offset_ms"], endpoint=url
    )
    samples = 0
    for _, value in dataset:
        samples += len(tf.nest.flatten(value))
    seconds = time.perf_counter() - t
    if samples != c["series"] * c["length"]:
        sys.exit(f"tensorflow-io read {samples} samples, not {c['series']} x {c['length']}")
    return samples, seconds


def main():
    config = json.loads(sys.argv[1])
    pac_samples, pac_seconds = prometheus_api_client(config["url"], config["pac"])
    tfio_samples, tfio_seconds = tensorflow_io(config["url"], config["tfio"])
    print(
        json.dumps(
            {
                "pac_samples": pac_samples,
                "pac_seconds": pac_seconds,
                "pac_version": version("prometheus-api-client"),
                "tfio_samples": tfio_samples,
                "tfio_seconds": tfio_seconds,
                "tfio_version": version("tensorflow-io"),
            }
        )
    )


if __name__ == "__main__":
    main()
