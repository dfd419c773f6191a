"""Multi-worker training: two processes on loopback ports, with and without the corrections
that Keras 3's fit() needs under MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.tiny_data import sms_table

HERE = Path(__file__).resolve().parent
TIMEOUT = 180


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports, index):
    return json.dumps(
        {
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def run_workers(commands, envs):
    """Starts one process per command, waits for all (bounded), returns their outputs."""
    processes = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        for c, e in zip(commands, envs, strict=True)
    ]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=TIMEOUT)
            results.append((process.returncode, out.decode(), err.decode()))
    finally:
        for process in processes:
            process.kill()
    return results


def keras_fit_on_two_workers(corrections):
    ports = ",".join(map(str, free_ports(2)))
    commands = [
        [sys.executable, str(HERE / "multiworker_worker.py"), str(i), ports, corrections]
        for i in range(2)
    ]
    envs = [{**os.environ, "PYTHONPATH": str(HERE.parent)}] * 2
    outputs = []
    for code, out, err in run_workers(commands, envs):
        assert code == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


@pytest.mark.parametrize(
    ("left_out", "keras_error"),
    [
        ("build", "PerReplica"),
        ("reduce", "Invalid reduction dimension 0 for input with 0 dimensions"),
    ],
)
def test_each_correction_is_needed(left_out, keras_error):
    kept = "build" if left_out == "reduce" else "reduce"
    for output in keras_fit_on_two_workers(kept):
        assert keras_error in output.get("error", ""), output


def test_with_both_corrections_workers_train_identical_weights():
    first, second = keras_fit_on_two_workers("build,reduce")
    assert "error" not in first, first
    assert first["weights"] == second["weights"]
    assert first["loss"] == second["loss"]


@pytest.mark.parametrize(
    "streamed",
    # In memory, each worker reads every row and keeps its share: the streamed shards go
    # through more (a split by file); the in-memory case runs in make test-slow.
    [pytest.param(False, marks=pytest.mark.slow), True],
    ids=["in-memory", "streamed-shards"],
)
def test_two_bigmodel_workers_write_one_run_directory(tmp_path, streamed):
    data = sms_table(tmp_path)
    options = "--strategy multiworker --epochs 2 --batch-size 8 --units 4 --embedding-dim 8"
    if streamed:  # three shards, split by file between two workers: one reads two
        frame = pd.read_csv(sms_table(tmp_path, rows_per_class=100))
        for i in range(3):
            frame.iloc[i::3].to_csv(tmp_path / f"part-{i}.csv", index=False)
        data, options = tmp_path / "part-*.csv", options + " --stream-above-mb 0"
    run = tmp_path / "run"
    ports = free_ports(2)
    bigmodel = str(Path(sys.executable).with_name("bigmodel"))
    command = [bigmodel, "train", "lstm", "--data", str(data), "--out", str(run), "--quiet"]
    command += options.split()
    envs = [{**os.environ, "TF_CONFIG": tf_config(ports, i)} for i in range(2)]
    (chief_code, chief_out, chief_err), (code, out, err) = run_workers([command] * 2, envs)
    assert chief_code == 0, chief_err[-3000:]
    assert code == 0, err[-3000:]
    assert f"Run directory: {run}" in chief_out
    assert "the chief writes the run directory" in out
    for file in ("run.yaml", "model.keras", "labels.json", "metrics.json", "history.csv"):
        assert (run / file).is_file(), file
    info = __import__("yaml").safe_load((run / "run.yaml").read_text())
    assert info["strategy"] == {"name": "multiworker", "replicas": 2, "workers": 2}
    evaluated = subprocess.run(
        [bigmodel, "eval", str(run), "--data", str(data), "--json"],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert evaluated.returncode == 0, evaluated.stderr.decode()[-2000:]
    assert json.loads(evaluated.stdout)["num_examples"] == (200 if streamed else 60)


def test_multiworker_needs_tf_config(tmp_path, monkeypatch):
    from keras_bigmodel.errors import UserError
    from keras_bigmodel.strategy import is_chief_task, read_tf_config

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="needs the TF_CONFIG environment variable"):
        read_tf_config()
    monkeypatch.setenv(
        "TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'
    )
    with pytest.raises(UserError, match="TF_CONFIG: not a cluster with this task"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 1))
    assert not is_chief_task()
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {"chief": ["a:1"], "worker": ["b:2"]},
                "task": {"type": "chief", "index": 0},
            }
        ),
    )
    assert is_chief_task()


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_both_at_one_step_and_resume_is_exact(tmp_path):
    """SIGTERM reaches one worker only (a preempted machine): both stop at the same batch
    with exit 143, the chief checkpoints, and both resumed end as a run never stopped."""
    import signal
    import time

    import keras
    import numpy as np
    import yaml

    import keras_bigmodel  # noqa: F401  registers what model.keras names

    data = sms_table(tmp_path, rows_per_class=100)
    bigmodel = str(Path(sys.executable).with_name("bigmodel"))

    def command(run):
        return [bigmodel, "train", "lstm", "--data", str(data), "--out", str(run), "--quiet",
                "--strategy", "multiworker", "--epochs", "8", "--batch-size", "4",
                "--units", "4", "--embedding-dim", "8", "--early-stopping", "0"]  # fmt: skip

    def envs():
        ports = free_ports(2)
        return [{**os.environ, "TF_CONFIG": tf_config(ports, i)} for i in range(2)]

    reference = tmp_path / "reference"
    for code, _, err in run_workers([command(reference)] * 2, envs()):
        assert code == 0, err[-3000:]

    run = tmp_path / "run"
    processes = [
        subprocess.Popen(command(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        for e in envs()
    ]
    try:
        deadline = time.time() + TIMEOUT
        while not (run / "run.yaml").is_file() or not (
            (yaml.safe_load((run / "run.yaml").read_text()) or {}).get("progress")
        ):
            assert time.time() < deadline and all(p.poll() is None for p in processes)
            time.sleep(0.05)
        processes[1].send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=TIMEOUT) for p in processes]
    finally:
        for process in processes:
            process.kill()
    assert [p.returncode for p in processes] == [143, 143], [o[1][-3000:] for o in outputs]
    info = yaml.safe_load((run / "run.yaml").read_text())
    assert info["status"] == "interrupted"
    for code, _, err in run_workers([command(run) + ["--resume"]] * 2, envs()):
        assert code == 0, err[-3000:]
    mine = keras.models.load_model(run / "model.keras").get_weights()
    theirs = keras.models.load_model(reference / "model.keras").get_weights()
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (run / "history.csv").read_text() == (reference / "history.csv").read_text()
