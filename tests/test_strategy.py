"""Distribution on one host: MirroredStrategy over two logical CPU devices (set up in
conftest.py) must train the same model as one device does."""

import numpy as np
import pandas as pd
import pytest
import yaml

import keras_bigmodel as kb
from keras_bigmodel.errors import UserError
from keras_bigmodel.strategy import make_strategy
from tests.tiny_data import lstm_data

# No dropout: the two runs then compute the same function, and only the split of each
# batch between replicas differs.
DETERMINISTIC = {
    "dropout": 0.0,
    "embedding_dropout": 0.0,
    "epochs": 3,
    "quiet": True,
    "early_stopping": 0,
}


def test_mirrored_on_two_devices_matches_one_device(tmp_path):
    data, options = lstm_data(tmp_path)
    # 54 training and 6 validation rows: batches of 6 split evenly into 3 per replica.
    common = {**options, **DETERMINISTIC, "batch_size": 6}
    one = kb.train("lstm", data=data, out=tmp_path / "one", strategy="default", **common)
    two = kb.train(
        "lstm", data=data, out=tmp_path / "two", strategy="mirrored", devices=2, **common
    )
    a = pd.read_csv(one.run_dir / "history.csv")
    b = pd.read_csv(two.run_dir / "history.csv")
    np.testing.assert_allclose(b["loss"], a["loss"], atol=1e-5)
    np.testing.assert_allclose(b["val_loss"], a["val_loss"], atol=1e-5)
    assert a["loss"].iloc[-1] < a["loss"].iloc[0]  # it did learn something
    info = yaml.safe_load((two.run_dir / "run.yaml").read_text())
    assert info["strategy"] == {"name": "mirrored", "replicas": 2, "workers": 1}


def test_auto_uses_one_device_without_gpus():
    info = make_strategy("auto")
    assert (info.name, info.replicas) == ("default", 1)
    assert make_strategy("auto", devices=2).replicas == 2


def test_too_many_devices():
    with pytest.raises(UserError, match="--devices 3: this host has only 2 logical CPU"):
        make_strategy("mirrored", devices=3)


THREADS = """
import json, sys, tensorflow as tf
from keras_bigmodel.strategy import configure_threads
seen = [configure_threads(False)["intra_op"], configure_threads(True)]
tf.constant(1.0) + 1  # TensorFlow starts: its pools are made
seen.append(configure_threads(False))
print(json.dumps(seen))
"""


@pytest.mark.parametrize("environment", [None, "3"])
def test_small_operations_get_half_the_cores_unless_the_environment_says(environment):
    """Before TensorFlow starts, a network of small operations gets half the cores per
    operation (one on 2 cores); `TF_NUM_INTRAOP_THREADS` wins; once started, the count
    stays, and `run.yaml` records the count in force."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_NUM_INTRAOP_THREADS"}
    if environment:
        env["TF_NUM_INTRAOP_THREADS"] = environment
    done = subprocess.run(
        [sys.executable, "-c", THREADS], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    default, small, started = __import__("json").loads(done.stdout.splitlines()[-1])
    cores = len(os.sched_getaffinity(0))
    if environment:
        assert default == 3 and small == started == {"intra_op": 3, "cores": cores}
    else:
        assert default == cores
        assert small == started == {"intra_op": max(1, cores // 2), "cores": cores}
