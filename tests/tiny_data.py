"""Tiny real data sets for each registered model, shared by the tests.

`FOR_MODEL[name](folder)` writes a small training set for model `name` into `folder` and
returns `(data_path, options)`: the `--data` path and the options (tiny layer sizes) that
train it in seconds. A new model adds its entry here and `test_every_model.py` covers it.
"""

from pathlib import Path

import pandas as pd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
FOR_MODEL = {}


def sms_table(folder, rows_per_class=30):
    """Writes `rows_per_class` ham and spam messages from the SMS data as a CSV."""
    frame = pd.read_csv(EXAMPLES / "sms_spam.tsv", sep="\t", quoting=3)
    frame = pd.concat(
        [frame[frame.Label == label].head(rows_per_class) for label in ("ham", "spam")]
    )
    frame = frame.rename(columns={"SMS": "text", "Label": "label"})
    path = Path(folder) / "sms.csv"
    frame.to_csv(path, index=False)
    return path


def lstm_data(folder):
    return sms_table(folder), {"embedding_dim": 8, "units": 4, "min_frequency": 1}


FOR_MODEL["lstm"] = lstm_data


def transformer_data(folder):
    # Two blocks: the second is where a lost padding mask would show.
    options = {"embedding_dim": 8, "num_heads": 2, "num_layers": 2, "ff_dim": 8}
    return sms_table(folder), {**options, "min_frequency": 1}


FOR_MODEL["transformer"] = transformer_data


def digit_folder(folder, digits=(0, 1, 2), per_digit=10):
    """Writes the first `per_digit` 8x8 scikit-learn digits of each digit as grayscale PNGs
    in `folder/digits/<digit>/`."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    root = Path(folder) / "digits"
    for digit in digits:
        (root / str(digit)).mkdir(parents=True, exist_ok=True)
        for row in (data.target == digit).nonzero()[0][:per_digit]:
            pixels = (data.images[row] * (255 / 16)).round().astype("uint8")
            Image.fromarray(pixels, mode="L").save(root / str(digit) / f"{row:04d}.png")
    return root


def cnn_data(folder):
    return digit_folder(folder), {"image_size": "8", "filters": (4,)}


FOR_MODEL["cnn"] = cnn_data


def california_table(folder, rows=60):
    """Writes `rows` rows of the California housing data as a CSV: a seeded sample, led by
    three rows whose `total_bedrooms` is empty."""
    frame = pd.read_csv(EXAMPLES / "california_housing.csv")
    gaps = frame[frame.total_bedrooms.isna()].head(3)
    frame = pd.concat([gaps, frame.dropna().sample(rows - len(gaps), random_state=0)])
    path = Path(folder) / "california.csv"
    frame.to_csv(path, index=False)
    return path


def linear_data(folder):
    # A validation split, which the linear model does not hold out by default, so that the
    # shared checks see validation metrics as for every model.
    return california_table(folder), {"target": "median_house_value", "val_split": 0.1}


FOR_MODEL["linear"] = linear_data
