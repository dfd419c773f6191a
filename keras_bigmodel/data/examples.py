"""Examples: the rows read for a model, as its raw inputs, targets and columns to keep."""

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Examples:
    """Rows read for a model.

    Attributes:
        inputs: the end-to-end model's raw inputs by input name (strings, image bytes,
            column values), one entry per row.
        targets: label strings for a classifier, floats for a regression, or `None` when
            the data has no target (prediction).
        frame: the columns `predict` copies to its output, one row per example.
        source: the data's name in messages (the path or glob given).
        paths: the files read, for the fingerprint.
        target_name: where targets come from, for messages (a column, or `folder`).
    """

    inputs: dict
    targets: np.ndarray | None
    frame: pd.DataFrame
    source: str
    paths: list
    target_name: str = "label"

    def __len__(self):
        return len(self.frame)

    def take(self, indices):
        """Returns the examples at these row indices."""
        return Examples(
            inputs={name: values[indices] for name, values in self.inputs.items()},
            targets=None if self.targets is None else self.targets[indices],
            frame=self.frame.iloc[indices].reset_index(drop=True),
            source=self.source,
            paths=self.paths,
            target_name=self.target_name,
        )
