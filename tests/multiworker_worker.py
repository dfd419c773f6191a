"""One worker of a two-process MultiWorkerMirroredStrategy run, for tests/test_multiworker.py.

    python tests/multiworker_worker.py INDEX PORT0,PORT1 CORRECTIONS

Trains a tiny Keras model with `fit()` under the corrections named (comma-separated, or
`none`) and prints the sum of its final weights as JSON, or the error it failed with.
"""

import json
import os
import sys

index, ports, corrections = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"localhost:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    }
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_bigmodel.multiworker import keras_multiworker_fixes  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
y = (x.sum(axis=1) > 2).astype("int32")
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
chosen = () if corrections == "none" else tuple(corrections.split(","))
try:
    with keras_multiworker_fixes(strategy, corrections=chosen):
        history = model.fit(data, epochs=2, verbose=0)
except Exception as exc:  # the test reads which error Keras raised
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:2000]}), flush=True)
    sys.exit(0)
weights = float(sum(np.sum(w) for w in model.get_weights()))
print(json.dumps({"weights": weights, "loss": history.history["loss"]}), flush=True)
