"""Feature tables: choosing numeric and categorical columns and turning them into model inputs.

A numeric column becomes a float32 array in which an empty cell is NaN; a categorical
column becomes an array of strings in which an empty cell is "". Each column is one input of
the end-to-end model, named after the column (made safe for TensorFlow's signatures).
"""

import re

import numpy as np
import pandas as pd

from keras_bigmodel.errors import UserError

#: characters TensorFlow accepts in a SavedModel signature's input names (Keras also
#: forbids "/"); every other character of a column name becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def column_list(text):
    """Splits a comma-separated option value into column names, blanks dropped.

    Args:
        text: a value such as `"a, b,c"`, or `None`.

    Returns:
        The names in order, or `None` when `text` is `None`.
    """
    if text is None:
        return None
    return [name.strip() for name in str(text).split(",") if name.strip()]


def input_name(column):
    """Returns the model input name for a column: the name itself where TensorFlow allows
    it, otherwise with each disallowed character replaced by `_` (`"rooms (total)"` becomes
    `"rooms__total_"`).

    Args:
        column: the column name.

    Returns:
        A name valid for a Keras input and a SavedModel signature.
    """
    name = _UNSAFE.sub("_", str(column))
    # A signature's input name must start with a letter, a digit or a dot.
    return name if re.match(r"[A-Za-z0-9.]", name) else f"c{name}"


def input_names(columns, source):
    """Maps columns to distinct model input names.

    Args:
        columns: the feature columns.
        source: the data's name, for messages.

    Returns:
        A dict from column name to input name, in column order.

    Raises:
        UserError: two columns would get the same input name.
    """
    names = {}
    for column in columns:
        name = input_name(column)
        clash = next((c for c, n in names.items() if n == name), None)
        if clash is not None:
            raise UserError(
                f"{source}: columns '{clash}' and '{column}' would both be model input "
                f"'{name}' (only letters, digits, '_', '.' and '-' are kept); rename one."
            )
        names[column] = name
    return names


def choose_feature_columns(frame, target, features, source):
    """Returns the feature columns: those `--features` names, or every column but the target.

    Raises:
        UserError: a named column is missing or repeated, the target is among the features,
            or no column is left.
    """
    if features is None:
        chosen = [c for c in frame.columns if c != target]
    else:
        chosen = features
        missing = [c for c in chosen if c not in frame.columns]
        if missing:
            have = ", ".join(map(str, frame.columns))
            raise UserError(
                f"{source}: no column '{missing[0]}' (columns: {have}); fix --features."
            )
        repeated = sorted({c for c in chosen if chosen.count(c) > 1})
        if repeated:
            raise UserError(f"--features names '{repeated[0]}' more than once.")
        if target in chosen:
            raise UserError(f"--features includes the target column '{target}'; leave it out.")
    if not chosen:
        raise UserError(f"{source}: no feature columns besides the target '{target}'.")
    return list(chosen)


def text_columns(frame, columns, source):
    """Returns the columns that hold text, to be treated as categories rather than numbers.

    Raises:
        UserError: a column holds mostly numbers and some text, which is more likely a typo
            than a set of categories; the message names the first such row.
    """
    found = []
    for column in columns:
        series = frame[column]
        if series.dtype.kind in "biuf":
            continue
        filled = series.dropna()
        text = pd.to_numeric(filled, errors="coerce").isna().to_numpy()
        if not text.any():
            continue
        if text.mean() < 0.5:
            row = series.index.get_loc(filled.index[np.flatnonzero(text)[0]])
            raise UserError(
                f"{source}: column '{column}' holds numbers, but row {row + 1} is "
                f"'{filled[text].iloc[0]}' ({int(text.sum())} such rows); fix or empty those "
                "cells, or name the column in --categorical to treat it as categories."
            )
        found.append(column)
    return found


def numeric_values(series, source, column, first_row=0):
    """Returns a numeric column as float32, NaN where a cell is empty.

    Args:
        first_row: the rows before these in the table (for a chunk of a streamed one).

    Raises:
        UserError: a cell holds text or an infinite number, naming its row (1-based, not
            counting the header).
    """
    if series.dtype == bool:
        series = series.astype(np.float64)
    elif not pd.api.types.is_numeric_dtype(series):
        # A table read as text (a chunk of a streamed one) spells true and false out.
        series = series.replace({"True": 1.0, "False": 0.0})
    numbers = pd.to_numeric(series, errors="coerce")
    bad = (numbers.isna() & series.notna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{source}: row {first_row + row + 1} of column '{column}' is "
            f"'{series.iloc[row]}', not a number ({int(bad.sum())} such rows); fix or empty "
            "those cells, or name the column in --categorical to treat it as categories."
        )
    values = numbers.to_numpy(dtype=np.float64)
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise UserError(
            f"{source}: row {first_row + row + 1} of column '{column}' is infinite; use a finite "
            "number, or leave the cell empty."
        )
    return values.astype(np.float32)


def category_values(series):
    """Returns a categorical column as strings: "" for an empty cell, and whole numbers
    written without a decimal point (`3`, not `3.0`, which a blank cell elsewhere in the
    column would otherwise make of it)."""
    return np.array([_category_text(value) for value in series], dtype=object)


def _category_text(value):
    if pd.isna(value):
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def target_values(series, source, column, first_row=0):
    """Returns a regression target as float64, NaN where a cell is empty.

    Args:
        first_row: the rows before these in the table (for a chunk of a streamed one).

    Raises:
        UserError: a cell holds text or an infinite number, naming its row.
    """
    numbers = pd.to_numeric(series, errors="coerce")
    bad = (numbers.isna() & series.notna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{source}: target column '{column}' must be numeric, but row {first_row + row + 1} is "
            f"'{series.iloc[row]}' ({int(bad.sum())} such rows); choose a numeric column "
            "with --target."
        )
    values = numbers.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise UserError(
            f"{source}: row {first_row + row + 1} of target column '{column}' is infinite."
        )
    return values
