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
