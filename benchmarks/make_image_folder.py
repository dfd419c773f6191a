"""Writes a large folder of colour PNGs, one sub-folder per class, for scale checks.

    python benchmarks/make_image_folder.py OUT_DIR --images 120000 --size 96

Each image is a smooth background with one shape whose kind is its class (disc, square,
triangle, ring, cross, bars...), at a random place, size and colour, with a little noise,
so the files compress like photos of simple scenes rather than like pure noise.
"""

import argparse
import multiprocessing
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ("disc", "square", "triangle", "ring", "cross", "hbars", "vbars", "diamond")


def draw(shape, size, rng):
    """One `size` x `size` RGB image of `shape`, as uint8."""
    y, x = np.mgrid[0:size, 0:size] / size
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x + np.sin(angle) * y)[..., None]
    image = start + (end - start) * (ramp - ramp.min()) / (np.ptp(ramp) or 1)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    radius = rng.uniform(0.15, 0.3)
    dy, dx = y - cy, x - cx
    masks = {
        "disc": dy**2 + dx**2 < radius**2,
        "square": (abs(dy) < radius) & (abs(dx) < radius),
        "triangle": (dy < radius) & (dy > 2 * abs(dx) - radius),
        "ring": abs(np.sqrt(dy**2 + dx**2) - radius) < radius / 3,
        "cross": ((abs(dy) < radius / 3) | (abs(dx) < radius / 3))
        & (abs(dy) < radius)
        & (abs(dx) < radius),
        "hbars": (np.sin(y * 40) > 0) & (abs(dy) < radius) & (abs(dx) < radius),
        "vbars": (np.sin(x * 40) > 0) & (abs(dy) < radius) & (abs(dx) < radius),
        "diamond": abs(dy) + abs(dx) < radius,
    }
    image[masks[shape]] = rng.integers(0, 256, 3)
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _write(job):
    out, size, seed, start, stop = job
    rng = np.random.default_rng([seed, start])
    for index in range(start, stop):
        shape = SHAPES[index % len(SHAPES)]
        folder = Path(out) / shape
        Image.fromarray(draw(shape, size, rng)).save(folder / f"{index:07d}.png")
    return stop - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--images", type=int, default=120_000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for shape in SHAPES:
        (Path(args.out_dir) / shape).mkdir(parents=True, exist_ok=True)
    step = 2000
    jobs = [
        (args.out_dir, args.size, args.seed, start, min(start + step, args.images))
        for start in range(0, args.images, step)
    ]
    with multiprocessing.Pool() as pool:
        written = sum(pool.imap_unordered(_write, jobs))
    size = f"{args.size}x{args.size}"
    print(f"{written} images of {size} in {len(SHAPES)} classes under {args.out_dir}/")


if __name__ == "__main__":
    main()
