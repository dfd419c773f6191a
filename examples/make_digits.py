"""Writes scikit-learn's bundled 8x8 handwritten digits as PNG folders, one per digit.

python examples/make_digits.py demo/digits --test 0.2

writes demo/digits/train/<digit>/<index>.png and demo/digits/test/<digit>/<index>.png,
a stratified, reproducible split; with --test 0, demo/digits/<digit>/<index>.png. The
images are the UCI digits that ship inside scikit-learn: nothing is downloaded.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def write_digits(out, test=0.0, seed=0, per_class=None):
    """Writes the digits as grayscale PNGs in one sub-folder per digit.

    Args:
        out: the folder to write into.
        test: the share of each digit held out into `out/test/`; the rest goes into
            `out/train/`. With 0, every image goes straight into `out/<digit>/`.
        seed: fixes which images are held out.
        per_class: keep only the first this many images of each digit (tiny test data).

    Returns:
        The number of images written per part, e.g. `{"train": 1437, "test": 360}`.
    """
    digits = load_digits()
    # The scans count ink in 0..16; PNG pixels are 0..255, ink white on black.
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    rng = np.random.default_rng(seed)
    parts = {}
    for digit in np.unique(digits.target):
        rows = np.flatnonzero(digits.target == digit)[:per_class]
        held_out = set(rng.permutation(rows)[: round(len(rows) * test)].tolist())
        for row in rows:
            part = ("test" if row in held_out else "train") if test else ""
            folder = Path(out) / part / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[row], mode="L").save(folder / f"{row:04d}.png")
            parts[part or "all"] = parts.get(part or "all", 0) + 1
    return parts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--test", type=float, default=0.0, help="share held out for testing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    parts = write_digits(args.out_dir, args.test, args.seed)
    written = ", ".join(f"{count} {part} images" for part, count in parts.items())
    print(f"{written} in {args.out_dir}/")


if __name__ == "__main__":
    main()
