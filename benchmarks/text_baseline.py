"""The bigram baseline of issue 10: TF-IDF of words and word pairs, logistic regression.

    python benchmarks/text_baseline.py TRAIN TEST [--text-column text] [--label-column label]

What a practitioner tries before a neural network: scikit-learn's `TfidfVectorizer` over
word unigrams and bigrams (sublinear term frequencies), and a logistic regression whose
regularisation `C` is chosen by 5-fold cross-validation on the training rows alone. The
TEST rows are scored once. Prints one JSON line: the test accuracy, the chosen `C`, the
features and the seconds taken.
"""

import argparse
import csv
import json
import time
import warnings

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline

#: the regularisation strengths cross-validation chooses from.
CS = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]


def read(path, text_column, label_column):
    if str(path).endswith(".tsv"):
        frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)
    else:
        frame = pd.read_csv(path, keep_default_na=False)
    return frame[text_column].astype(str).tolist(), frame[label_column].astype(str).tolist()


def bigram_baseline(train, test, text_column="text", label_column="label", seed=0):
    """Fits the baseline on `train` and returns its figures on `test`."""
    # scikit-learn 1.8 announces changes to LogisticRegressionCV's defaults; this script
    # passes what it means.
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    began = time.perf_counter()
    texts, labels = read(train, text_column, label_column)
    test_texts, test_labels = read(test, text_column, label_column)
    folds = min(5, min(labels.count(label) for label in set(labels)))
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegressionCV(Cs=CS, cv=folds, scoring="accuracy", max_iter=5000, random_state=seed),
    )
    model.fit(texts, labels)
    accuracy = float((model.predict(test_texts) == pd.Series(test_labels)).mean())
    return {
        "accuracy": accuracy,
        "C": float(model[-1].C_[0]),
        "features": len(model[0].vocabulary_),
        "train_rows": len(texts),
        "test_rows": len(test_texts),
        "seconds": time.perf_counter() - began,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    args = parser.parse_args()
    print(json.dumps(bigram_baseline(args.train, args.test, args.text_column, args.label_column)))


if __name__ == "__main__":
    main()
