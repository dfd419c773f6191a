"""Accuracy of the text classifiers with default settings on full real data (make test-slow)."""

import csv
import subprocess
import sys
import time

import pandas as pd
import pytest

import keras_bigmodel as kb
from tests.tiny_data import EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_sms_spam_held_out_fifth(tmp_path, model):
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLES.parent / "split_table.py"),
            str(EXAMPLES / "sms_spam.tsv"),
            str(tmp_path),
            "--test",
            "0.2",
        ],
        check=True,
    )
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    frame = pd.read_csv(test, sep="\t", quoting=csv.QUOTE_NONE)
    assert len(frame) == 1114
    started = time.perf_counter()
    result = kb.train(
        model,
        data=train,
        text_column="SMS",
        label_column="Label",
        out=tmp_path / "run",
        quiet=True,
    )
    seconds = time.perf_counter() - started
    metrics = kb.evaluate(result.run_dir, test)
    print(
        f"{model} sms_spam held-out accuracy {metrics['accuracy']:.4f}, f1_macro "
        f"{metrics['f1_macro']:.4f}, trained in {seconds:.0f} s"
    )
    assert metrics["accuracy"] >= 0.985
    assert seconds < 180
