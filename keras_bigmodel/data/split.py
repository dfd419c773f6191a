"""Holding out validation rows: stratified by class, fixed by the seed."""

import numpy as np


def split_indices(num_rows, fraction, seed, labels=None):
    """Splits row indices into training and validation sets.

    Args:
        num_rows: the number of rows.
        fraction: the share held out for validation.
        seed: fixes which rows are held out.
        labels: class indices per row, to hold out the same share of every class.

    Returns:
        `(train, validation)` arrays of row indices, each in ascending order.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(num_rows)
        cut = int(round(num_rows * fraction))
        return np.sort(order[cut:]), np.sort(order[:cut])
    held_out = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        # Every class with two or more rows gets at least one validation row.
        count = int(round(len(rows) * fraction))
        if fraction > 0 and count == 0 and len(rows) > 1:
            count = 1
        held_out.append(rows[:count])
    validation = np.sort(np.concatenate(held_out))
    train = np.setdiff1d(np.arange(num_rows), validation)
    return train, validation
