"""Splits a labelled table into train and test files, stratified by label, reproducibly.

python examples/split_table.py examples/data/sms_spam.tsv demo/sms --test 0.2
"""

import argparse
import csv
from pathlib import Path

import numpy as np
import pandas as pd


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("out_dir")
    parser.add_argument("--test", type=float, default=0.2, help="share held out for testing")
    parser.add_argument("--label-column", default=None, help="default: the first column")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    source = Path(args.table)
    # Tab-separated files have no quoting: a message may begin with a quote mark.
    tsv = source.suffix == ".tsv"
    options = {"sep": "\t", "quoting": csv.QUOTE_NONE} if tsv else {}
    frame = pd.read_csv(source, keep_default_na=False, **options)
    label = args.label_column or frame.columns[0]
    rng = np.random.default_rng(args.seed)
    test_rows = []
    for _, rows in frame.groupby(label).groups.items():
        rows = rng.permutation(np.asarray(rows))
        test_rows.extend(rows[: round(len(rows) * args.test)])
    test = frame.loc[sorted(test_rows)]
    train = frame.drop(index=test.index)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        part.to_csv(out / f"{name}{source.suffix}", index=False, **options)
    print(f"{len(train)} training and {len(test)} test rows in {out}/")


if __name__ == "__main__":
    main()
