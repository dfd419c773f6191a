"""Interrupted, repeated and mistaken runs: kill -9, SIGINT and SIGTERM in the middle of an
epoch, then --resume, end with the very weights and history of a run never interrupted;
--overwrite and --resume refuse what they must and never lose a run."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from keras_bigmodel.runs import open_run
from tests.tiny_data import sms_table

BIGMODEL = str(Path(sys.executable).with_name("bigmodel"))
# 200 rows, 180 to train on: 23 batches an epoch, each a few milliseconds, so a signal
# sent once the first epoch has ended lands in the middle of a later one.
OPTIONS = [
    "--epochs", "3", "--batch-size", "8", "--units", "4", "--embedding-dim", "8",
    "--min-frequency", "1", "--early-stopping", "2", "--checkpoint-every", "5", "--quiet",
]  # fmt: skip


def train_args(data, out, extra=()):
    return ["train", "lstm", "--data", str(data), "--out", str(out), *OPTIONS, *extra]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Runs trained without interruption, in this process, by their extra flags."""
    from click.testing import CliRunner

    from cli.main import bigmodel

    folder = tmp_path_factory.mktemp("resume")
    data = sms_table(folder, rows_per_class=100)
    runs = {}

    def get(extra=()):
        if extra not in runs:
            run = folder / f"reference-{len(runs)}"
            result = CliRunner().invoke(bigmodel, train_args(data, run, extra))
            assert result.exit_code == 0, result.output
            runs[extra] = run
        return data, runs[extra]

    return get


@pytest.fixture
def reference(references):
    return references()


def assert_same_run(run, reference):
    """Every weight bitwise equal, and the same history to the last digit."""
    mine = keras.models.load_model(run / "model.keras").get_weights()
    theirs = keras.models.load_model(reference / "model.keras").get_weights()
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (run / "history.csv").read_text() == (reference / "history.csv").read_text()
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2]  # no epoch lost or repeated


def run_info(run):
    return yaml.safe_load((run / "run.yaml").read_text())


def start_and_signal(args, run, signum):
    """Starts `bigmodel ARGS` and sends `signum` once training is past its first epoch."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [BIGMODEL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    deadline = time.time() + 120
    while True:
        assert time.time() < deadline and process.poll() is None, process.stdout.read()
        try:
            progress = run_info(run).get("progress") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            progress = {}
        if progress.get("epoch", 0) >= 1:
            break
        time.sleep(0.02)
    time.sleep(0.1)
    process.send_signal(signum)
    output = process.communicate(timeout=120)[0].decode()
    return process.returncode, output


def files_digest(folder):
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("signum", "code", "status", "extra"),
    [
        (signal.SIGKILL, -9, "training", ()),
        (signal.SIGINT, 130, "interrupted", ()),
        # The same path as SIGINT's, with another exit code: make test-slow.
        pytest.param(signal.SIGTERM, 143, "interrupted", (), marks=pytest.mark.slow),
        # Streamed from disk: each pass shuffled block by block, keyed by the pass.
        (signal.SIGTERM, 143, "interrupted", ("--stream-above-mb", "0", "--seed", "0")),
    ],
    ids=["kill-9", "sigint", "sigterm", "sigterm-streamed"],
)
def test_interrupted_then_resumed_equals_uninterrupted(
    references, tmp_path, invoke, signum, code, status, extra
):
    data, reference_run = references(extra)
    run = tmp_path / "run"
    returncode, output = start_and_signal(train_args(data, run, extra), run, signum)
    assert returncode == code, output
    info = run_info(run)
    assert info["status"] == status
    assert not (run / "model.keras").exists()
    if signum != signal.SIGKILL:
        name = signal.Signals(signum).name
        command = f"bigmodel train lstm --out {run} --resume"
        assert f"Stopped by {name}" in output and f"Continue with: {command}" in output
        stopped = info["progress"]
        assert stopped["epoch"] >= 1
    # What the hint says: the run's own options come from its run.yaml.
    result = invoke("train", "lstm", "--out", run, "--resume")
    assert result.exit_code == 0, result.output
    assert run_info(run)["status"] == "finished"
    assert_same_run(run, reference_run)


def test_resume_refuses_changed_options_and_data_and_finished_runs(reference, tmp_path, invoke):
    data, reference_run = reference
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    info = run_info(run)
    info["status"] = "interrupted"
    (run / "run.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    before = files_digest(run)

    result = invoke("train", "lstm", "--out", run, "--resume", "--units", "8", "--dropout", "0.2")
    assert result.exit_code == 2
    assert "--units 4 -> 8" in result.output and "--dropout 0.5 -> 0.2" in result.output

    other = tmp_path / "other.csv"
    pd.read_csv(data).head(150).to_csv(other, index=False)
    result = invoke("train", "lstm", "--out", run, "--resume", "--data", other)
    assert result.exit_code == 2
    assert f"the training data {other} is not the data" in result.output

    result = invoke("train", "cnn", "--out", run, "--resume")
    assert result.exit_code == 2 and "is a lstm run, not cnn" in result.output

    result = invoke("train", "lstm", "--out", run, "--resume", "--epochs", "2")
    assert result.exit_code == 2, result.output
    assert "--epochs 2, but the run has already trained after epoch 3" in result.output
    result = invoke(
        "train", "lstm", "--out", run, "--resume", "--epochs", "5", "--lr-schedule", "cosine"
    )
    assert result.exit_code == 2 and "--lr-schedule constant -> cosine" in result.output
    assert files_digest(run) == before  # refused before anything was written

    result = invoke("train", "lstm", "--out", reference_run, "--resume")
    assert result.exit_code == 2 and "is finished; nothing to resume" in result.output

    # A run of bigmodel 0.1 recorded no --bucket-by-length: it batched the permutation as
    # it was, and resumes so.
    assert info["config"].pop("bucket_by_length") is True
    (run / "run.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    result = invoke("train", "lstm", "--out", run, "--resume", "--bucket-by-length")
    assert result.exit_code == 2
    assert "--bucket-by-length False -> True" in result.output


def test_overwrite_refuses_a_folder_that_is_not_a_run(reference, tmp_path, invoke):
    data, _ = reference
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    result = invoke(*train_args(data, folder), "--overwrite")
    assert result.exit_code == 2
    assert f"--overwrite: {folder} is not a bigmodel run directory" in result.output
    assert sorted(p.name for p in folder.rglob("*")) == ["data.csv", "sub", "thesis.tex"]
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_a_replacement_stopped_before_taking_its_place_is_put_there(reference, tmp_path, invoke):
    """Killed between finishing and the renames, a replacement takes the old run's place the
    next time that run directory is used; a replacement killed earlier leaves it be."""
    _, reference_run = reference
    run, replacement = tmp_path / "run", tmp_path / ".run.replacement"
    shutil.copytree(reference_run, replacement)
    shutil.copytree(reference_run, tmp_path / ".run.replaced")  # the old run, moved aside
    result = invoke("inspect", run, "--json")
    assert result.exit_code == 2  # nothing at the run's own path until a train says so
    result = invoke("train", "lstm", "--out", run, "--resume")
    assert result.exit_code == 2 and f"--resume: {run} is finished" in result.output
    assert not replacement.exists() and not (tmp_path / ".run.replaced").exists()
    assert files_digest(run) == files_digest(reference_run)


def test_killed_overwrite_leaves_the_old_run_whole(reference, tmp_path, invoke):
    data, reference_run = reference
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    before = files_digest(run)
    replacement = tmp_path / ".run.replacement"
    returncode, output = start_and_signal(
        [*train_args(data, run), "--overwrite"], replacement, signal.SIGKILL
    )
    assert returncode == -9, output
    assert files_digest(run) == before
    assert run_info(run)["status"] == "finished"
    assert open_run(run).load_model() is not None
    # The replacement, resumed, takes the old run's place only once it has finished.
    result = invoke("train", "lstm", "--out", run, "--overwrite", "--resume")
    assert result.exit_code == 0, result.output
    assert not replacement.exists()
    assert run_info(run)["config"]["overwrite"] is True  # the replacement, not the old run
    assert_same_run(run, reference_run)
