"""Peak memory and wall time of training on data larger than memory would like.

    python benchmarks/scale.py WORK_DIR [--bigmodel "bigmodel"] [--only images]

Writes the data once into WORK_DIR (1 GB of text shards from the SMS data, a folder of
120,000 colour PNGs of 96x96 pixels, California housing), then trains on each under
`/usr/bin/time -v`, one run at a time, and prints wall time and peak resident memory.
`--bigmodel` names the command to time, so an older checkout can be measured the same way.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from harness import timed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

RUNS = {
    "text_shards": [
        "train", "lstm", "--data", "{work}/shards/part-*.csv", "--text-column", "SMS",
        "--label-column", "Label", "--epochs", "1", "--steps-per-epoch", "100",
        "--val-split", "0",
    ],
    "images": [
        "train", "cnn", "--data", "{work}/images", "--filters", "8,16", "--epochs", "1",
        "--steps-per-epoch", "50",
    ],
    "housing_streamed": [
        "train", "linear", "--data", "{work}/housing.csv", "--target", "median_house_value",
        "--stream-above-mb", "0",
    ],
}  # fmt: skip


def make_data(work):
    """Writes each data set unless it is there already."""
    python = sys.executable
    if not (work / "shards").is_dir():
        subprocess.run(
            [python, HERE / "make_text_shards.py", work / "shards", "--size-mb", "1024"],
            check=True,
        )
    if not (work / "images").is_dir():
        subprocess.run(
            [python, HERE / "make_image_folder.py", work / "images", "--images", "120000"],
            check=True,
        )
    if not (work / "housing.csv").is_file():
        (work / "housing.csv").write_bytes(
            (ROOT / "examples" / "data" / "california_housing.csv").read_bytes()
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir")
    parser.add_argument("--bigmodel", default=str(Path(sys.executable).with_name("bigmodel")))
    parser.add_argument("--only", choices=sorted(RUNS), action="append")
    args = parser.parse_args()
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    make_data(work)
    for name in args.only or RUNS:
        out = work / "runs" / name
        command = [
            *shlex.split(args.bigmodel),
            *(a.format(work=work) for a in RUNS[name]),
            "--out",
            str(out),
            "--overwrite",
            "--quiet",
        ]
        seconds, peak_mb, _ = timed(command)
        print(f"{name}: {seconds:.1f} s wall, peak RSS {peak_mb:.0f} MB  ({shlex.join(command)})")


if __name__ == "__main__":
    main()
