"""What the peer scripts share: their arguments (the seed's sizes) and their tables.

Pure Python and pandas, so both the project's environment (the Keras script) and the
benchmark's own (the PyTorch model) import it.
"""

import argparse
import csv

import pandas as pd


def arguments(description):
    """Parses a peer's command line: the training and test tables, their columns, and the
    seed article's sizes as defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--max-tokens", type=int, default=20000)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def read(path):
    """Reads a CSV or TSV table, every cell as written (TSV unquoted, as bigmodel reads it)."""
    if str(path).endswith((".tsv", ".tab")):
        return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)
    return pd.read_csv(path, keep_default_na=False)


def labelled_tables(args):
    """Returns `(train, test, classes, train_labels, test_labels)`: the two tables, the
    sorted class names of the training labels, and each table's labels as class indices."""
    train, test = read(args.train), read(args.test)
    classes = sorted(train[args.label_column].astype(str).unique())
    index = {name: i for i, name in enumerate(classes)}
    labels = [frame[args.label_column].astype(str).map(index).to_numpy() for frame in (train, test)]
    return train, test, classes, *labels
