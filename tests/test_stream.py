"""Tables streamed from disk: chunked statistics, the tf.data reader, hashed validation rows."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

import keras_bigmodel as kb
from keras_bigmodel.data.stream import TableStream, in_validation
from tests.tiny_data import lstm_data, sms_table


@pytest.fixture
def shards(tmp_path):
    frame = pd.read_csv(sms_table(tmp_path, rows_per_class=100)).sample(frac=1, random_state=0)
    for i in range(3):
        frame.iloc[i::3].to_csv(tmp_path / f"part-{i}.csv", index=False)
    return tmp_path, frame


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_stream_reads_what_pandas_reads(tmp_path, fmt):
    frame = pd.DataFrame(
        {
            "text": ['say "hi", now', "", "tab-free text", "ünïcode ok"],
            "label": ["a", "b", "a", "b"],
        }
    )
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t", quoting=3)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path)
    stream = TableStream(path)
    rows = [(t.numpy().decode(), y.numpy().decode()) for t, y in stream.dataset(["text", "label"])]
    assert rows == list(zip(frame["text"], frame["label"], strict=True))
    sample, total = stream.sample(["label", "text"], 10, seed=0)
    assert total == 4 and sample.fillna("")["text"].tolist() == frame["text"].tolist()


def test_sample_is_bounded_uniform_and_fixed_by_seed(shards):
    folder, frame = shards
    stream = TableStream(str(folder / "part-*.csv"))
    seen = []
    sample, total = stream.sample(["text"], 50, seed=1, on_chunk=lambda c, _: seen.append(len(c)))
    assert total == 200 == sum(seen) and len(sample) == 50
    again, _ = stream.sample(["text"], 50, seed=1)
    assert sample.equals(again)
    other, _ = stream.sample(["text"], 50, seed=2)
    assert not sample.equals(other)


def test_validation_rows_chosen_alike_in_pandas_and_tf(shards):
    folder, frame = shards
    columns = [
        frame["text"].astype(str).to_numpy(dtype=object),
        frame["label"].astype(str).to_numpy(dtype=object),
    ]
    held = np.asarray(in_validation(columns, 0.2, seed=42))
    assert 20 <= held.sum() <= 60  # about a fifth of 200
    stream = TableStream(str(folder / "part-*.csv"))
    streamed = [bool(in_validation(row, 0.2, 42)) for row in stream.dataset(["text", "label"])]
    assert sum(streamed) == held.sum()
    assert (np.asarray(in_validation(columns, 0.2, seed=7)) != held).any()


def test_training_streams_a_glob_of_shards(shards, tmp_path):
    folder, _ = shards
    _, options = lstm_data(tmp_path)
    result = kb.train(
        "lstm",
        data=str(folder / "part-*.csv"),
        out=tmp_path / "run",
        stream_above_mb=0,
        epochs=2,
        batch_size=8,
        quiet=True,
        **options,
    )
    info = yaml.safe_load((result.run_dir / "run.yaml").read_text())
    assert info["data"]["streamed"] is True
    assert info["data"]["rows"] == 200 and len(info["data"]["files"]) == 3
    assert info["data"]["train_rows"] + info["data"]["validation_rows"] == 200
    history = pd.read_csv(result.run_dir / "history.csv")
    assert len(history) == 2
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["train"]["num_examples"] == info["data"]["train_rows"]
    evaluated = kb.evaluate(result.run_dir, str(folder / "part-*.csv"))
    assert evaluated["num_examples"] == 200


def test_steps_per_epoch_goes_on_through_the_stream(shards, tmp_path):
    folder, _ = shards
    _, options = lstm_data(tmp_path)
    result = kb.train(
        "lstm",
        data=str(folder / "part-*.csv"),
        out=tmp_path / "run",
        stream_above_mb=0,
        epochs=3,
        steps_per_epoch=5,
        batch_size=8,
        quiet=True,
        early_stopping=0,
        **options,
    )
    assert len(pd.read_csv(result.run_dir / "history.csv")) == 3


def test_tables_under_the_limit_stay_in_memory(tmp_path):
    data, options = lstm_data(tmp_path)
    result = kb.train("lstm", data=data, out=tmp_path / "run", epochs=1, quiet=True, **options)
    info = yaml.safe_load((result.run_dir / "run.yaml").read_text())
    assert "streamed" not in info["data"]
    assert tf.io.gfile.exists(str(result.run_dir / "model.keras"))
