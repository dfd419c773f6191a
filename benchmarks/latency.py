"""Batch-1 latency of an exported SavedModel against `model.predict`, in a fresh process.

    python benchmarks/latency.py RUN_DIR EXPORT_VERSION_DIR [--calls 300]

One row of the run's kept training inputs (`sample.json`), sent alone, again and again:
through the export's `serving_default` signature, and through `model.predict` on the
run's `model.keras`. Prints one JSON line of p50 and p99 milliseconds and rows per second.
"""

import argparse
import json
import time

import numpy as np
import tensorflow as tf

import keras_bigmodel  # noqa: F401  (registers the layers model.keras names)
from keras_bigmodel.runs import open_run


def timings(call, calls):
    for _ in range(5):  # warm up: tracing, caches
        call()
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return np.asarray(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("export_dir")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    run = open_run(args.run_dir)
    row = run.sample_examples().take(np.arange(1))
    signature = tf.saved_model.load(args.export_dir).signatures["serving_default"]
    inputs = {name: tf.constant(values) for name, values in row.inputs.items()}
    exported = timings(lambda: signature(**inputs), args.calls)
    model = run.load_model()
    predicted = timings(lambda: model.predict(inputs, verbose=0), min(args.calls, 50))
    print(
        json.dumps(
            {
                "export_p50_ms": float(np.percentile(exported, 50)),
                "export_p99_ms": float(np.percentile(exported, 99)),
                "export_rows_per_second": float(1000 / exported.mean()),
                "predict_p50_ms": float(np.percentile(predicted, 50)),
            }
        )
    )


if __name__ == "__main__":
    main()
