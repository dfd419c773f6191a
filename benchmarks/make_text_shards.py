"""Writes a large sharded text table for scale checks: shuffled copies of the SMS data.

    python benchmarks/make_text_shards.py OUT_DIR --size-mb 1024 --shards 8

Each shard is a CSV with the SMS data's columns (`Label`, `SMS`); every copy of the data is
shuffled anew, so batches differ while the text stays real.
"""

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

SMS = Path(__file__).resolve().parents[1] / "examples" / "data" / "sms_spam.tsv"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frame = pd.read_csv(SMS, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)
    block = io.StringIO()
    frame.to_csv(block, index=False, header=False)
    lines = np.array(block.getvalue().splitlines(keepends=True), dtype=object)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_shard = args.size_mb * 2**20 / args.shards
    rows = 0
    for shard in range(args.shards):
        with open(out / f"part-{shard:03d}.csv", "w", encoding="utf-8") as handle:
            handle.write("Label,SMS\n")
            written = 0
            while written < per_shard:
                text = "".join(lines[rng.permutation(len(lines))])
                handle.write(text)
                written += len(text.encode("utf-8"))
                rows += len(lines)
    print(f"{rows} rows in {args.shards} shards under {out}/")


if __name__ == "__main__":
    main()
