"""Scale: a table larger than --stream-above-mb trains with bounded memory (make test-slow)."""

import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_streamed_shards_train_in_bounded_memory(tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "make_text_shards.py"),
            str(tmp_path / "shards"),
            "--size-mb",
            "320",
            "--shards",
            "4",
        ],
        check=True,
    )
    run = tmp_path / "run"
    bigmodel = str(Path(sys.executable).with_name("bigmodel"))
    done = subprocess.run(
        [
            bigmodel,
            "train",
            "lstm",
            "--data",
            str(tmp_path / "shards" / "part-*.csv"),
            "--text-column",
            "SMS",
            "--label-column",
            "Label",
            "--out",
            str(run),
            "--epochs",
            "1",
            "--steps-per-epoch",
            "100",
            "--val-split",
            "0",
            "--quiet",
        ],
        capture_output=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    info = yaml.safe_load((run / "run.yaml").read_text())
    print(f"streamed {info['data']['rows']} rows from 320 MB of shards; peak RSS {peak_mb:.0f} MB")
    assert info["data"]["streamed"] is True and len(info["data"]["files"]) == 4
    assert info["data"]["rows"] > 3_000_000
    assert peak_mb < 2048
