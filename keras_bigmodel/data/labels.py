"""Class labels: turning a label column into class names and indices."""

import numpy as np
import pandas as pd

from keras_bigmodel.errors import UserError


def label_strings(series, source, column, first_row=0):
    """Returns a label column as strings, integers written without a decimal point.

    Args:
        first_row: the rows before these in the table (for a chunk of a streamed one),
            so that a message names the table's row.

    Raises:
        UserError: a label is missing, naming its row (1-based, not counting the header).
    """
    missing = series.isna().to_numpy()
    if missing.any():
        row = first_row + int(np.flatnonzero(missing)[0]) + 1
        raise UserError(
            f"{source}: row {row} has no value in label column '{column}' "
            f"({int(missing.sum())} rows in all); fill or drop them."
        )
    if pd.api.types.is_float_dtype(series) and (series == series.round()).all():
        series = series.astype("int64")
    return series.astype(str).to_numpy(dtype=object)


def class_names_from(labels, source, column):
    """Returns the sorted class names: numerically when every label is an integer.

    Raises:
        UserError: fewer than two classes.
    """
    names = set(labels.tolist())
    if len(names) < 2:
        raise UserError(
            f"{source}: label column '{column}' has {len(names)} class"
            f"{'' if len(names) == 1 else 'es'}; a classifier needs at least two."
        )
    if all(_is_integer(name) for name in names):
        return sorted(names, key=int)
    return sorted(names)


def encode_labels(labels, class_names, source, column, first_row=0):
    """Maps label strings to class indices in `class_names` order.

    Args:
        first_row: the rows before these in the table (for a chunk of a streamed one),
            so that a message names the table's row.

    Raises:
        UserError: a label the model was not trained on, naming its row.
    """
    index = {name: i for i, name in enumerate(class_names)}
    encoded = np.empty(len(labels), dtype=np.int32)
    for row, label in enumerate(labels):
        if label not in index:
            raise UserError(
                f"{source}: row {first_row + row + 1} has label '{label}' in column '{column}', "
                f"not one of the model's classes ({', '.join(class_names)})."
            )
        encoded[row] = index[label]
    return encoded


def _is_integer(text):
    try:
        int(text)
    except ValueError:
        return False
    return True
