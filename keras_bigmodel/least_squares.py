"""Least squares for the linear regression, from the moments of the raw columns.

The standardised features are an affine function of the raw columns (`feature_map`), so
their covariance, and the weights that minimise the mean squared error plus Keras' `L1L2`
penalty (`solve_least_squares`), follow exactly from the columns' means and second
moments. Kept apart from `models/linear.py` so that listing the models (`bigmodel --help`)
does not import NumPy.
"""

from dataclasses import dataclass

import numpy as np

#: eigenvalues of the feature covariance below this share of the largest count as zero:
#: those directions (one-hot columns that sum to a constant) are left out of the solution.
EIGENVALUE_CUTOFF = 1e-12


@dataclass
class FeatureMap:
    """The standardised features as an affine function of the raw columns:
    `features = raw @ weights.T + offset`, with each column's scaling.

    Attributes:
        weights: `[features, raw columns]`.
        offset: `[features]`.
        numeric_mean, numeric_variance: each numeric column's mean and variance over its
            non-empty training cells.
        gaps: the numeric inputs with empty training cells, and the share empty of each.
        shares: each category's share of the training rows, by categorical input.
    """

    weights: np.ndarray
    offset: np.ndarray
    numeric_mean: np.ndarray
    numeric_variance: np.ndarray
    gaps: dict
    shares: dict


def least_squares(matrix, targets, l1=0.0, l2=0.0):
    """Solves the regression the network's loss defines, in float64, for data in memory.

    Minimises `mean((targets - matrix @ kernel - bias) ** 2) + l1 * sum(abs(kernel)) +
    l2 * sum(kernel ** 2)`, the mean squared error plus Keras' `L1L2` penalty (see
    `solve_least_squares`).

    Args:
        matrix: `[rows, features]` feature values.
        targets: `[rows]` target values.
        l1: the L1 penalty on the kernel (not the bias).
        l2: the L2 penalty on the kernel (not the bias).

    Returns:
        `(kernel, bias)`: a `[features]` float64 array and a float.
    """
    matrix = np.asarray(matrix, np.float64)
    targets = np.asarray(targets, np.float64)
    column_means, target_mean = matrix.mean(axis=0), targets.mean()
    centred = matrix - column_means
    covariance = centred.T @ centred / len(matrix)
    cross = centred.T @ (targets - target_mean) / len(matrix)
    kernel = solve_least_squares(covariance, cross, l1, l2)
    return kernel, float(target_mean - column_means @ kernel)


def solve_least_squares(covariance, cross, l1=0.0, l2=0.0):
    """Returns the kernel minimising `w @ covariance @ w - 2 * cross @ w + l2 * |w|^2 +
    l1 * |w|_1`: the mean squared error of centred data, whose covariance and
    feature-target covariance these are, plus Keras' `L1L2` penalty.

    Without a penalty it is the least-norm solution where columns are collinear (as one-hot
    columns always are with the intercept), as `numpy.linalg.lstsq` gives on the data.
    """
    values, vectors = np.linalg.eigh(covariance + l2 * np.eye(len(covariance)))
    kept = values > EIGENVALUE_CUTOFF * max(values.max(initial=0.0), 0.0)
    kernel = vectors[:, kept] @ ((vectors[:, kept].T @ cross) / values[kept])
    if l1 > 0:
        kernel = _with_l1(covariance, cross, kernel, l1, l2)
    return kernel


def _with_l1(gram, correlations, kernel, l1, l2, iterations=20000, tolerance=1e-12):
    """Adds the L1 penalty by accelerated proximal gradient descent (FISTA with adaptive
    restart) on `w @ gram @ w - 2 * correlations @ w + l2 * |w|^2 + l1 * |w|_1`, starting
    from `kernel`, the solution without the L1 term."""
    step = 1.0 / (2.0 * (np.linalg.eigvalsh(gram)[-1] + l2))
    current = point = kernel
    momentum = 1.0
    for _ in range(iterations):
        gradient = 2.0 * (gram @ point - correlations + l2 * point)
        moved = point - step * gradient
        following = np.sign(moved) * np.maximum(np.abs(moved) - step * l1, 0.0)
        if (point - following) @ (following - current) > 0:
            # Momentum pointing uphill: restarting it keeps convergence fast where collinear
            # columns make the problem ill-conditioned.
            momentum = 1.0
        change = np.max(np.abs(following - current))
        next_momentum = (1.0 + np.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        point = following + (momentum - 1.0) / next_momentum * (following - current)
        current, momentum = following, next_momentum
        if change <= tolerance * max(1.0, np.max(np.abs(current))):
            break
    return current


def feature_map(statistics):
    """Returns the standardised features as an affine function of the raw columns.

    A numeric column `x` (0 for a gap, `g` its gap indicator) becomes
    `(x + g * mean - mean) / std`: its standardised value, 0 for a gap. A column with gaps
    also gets its standardised gap indicator. A category `c` of a column whose kept
    categories' indicators are `o` becomes `(o_c - share_c * sum(o)) / sd_c`: its
    standardised indicator for a value kept, and 0 (the training mean) for one that is not.
    The preprocessor (`_build_preprocessor`) computes the very same features with Keras
    layers.
    """
    numeric, vocabularies = statistics.numeric, statistics.vocabularies
    count = len(numeric)
    raw_width = len(statistics.mean)
    present = 1.0 - statistics.mean[count : 2 * count]
    safe = np.where(present > 0, present, 1.0)
    numeric_mean = statistics.mean[:count] / safe
    numeric_variance = np.maximum(np.diag(statistics.second)[:count] / safe - numeric_mean**2, 0.0)
    rows, offset = [], []
    std = np.sqrt(usable_variance(numeric_variance))
    for j in range(count):
        row = np.zeros(raw_width)
        row[j], row[count + j] = 1.0 / std[j], numeric_mean[j] / std[j]
        rows.append(row)
        offset.append(-numeric_mean[j] / std[j])
    gaps = {}
    for j, name in enumerate(numeric):
        share = 1.0 - present[j]
        if share > 0:
            gaps[name] = share
            row = np.zeros(raw_width)
            row[count + j] = 1.0 / np.sqrt(usable_variance(share * (1 - share)))
            rows.append(row)
            offset.append(-share * row[count + j])
    shares, start = {}, 2 * count
    for name, vocabulary in vocabularies.items():
        share = statistics.mean[start : start + len(vocabulary)]
        shares[name] = share
        sd = np.sqrt(usable_variance(share * (1 - share)))
        for c in range(len(vocabulary)):
            row = np.zeros(raw_width)
            row[start : start + len(vocabulary)] = -share[c] / sd[c]
            row[start + c] += 1.0 / sd[c]
            rows.append(row)
            offset.append(0.0)
        start += len(vocabulary)
    return FeatureMap(
        weights=np.asarray(rows).reshape(len(rows), raw_width),
        offset=np.asarray(offset, np.float64),
        numeric_mean=numeric_mean,
        numeric_variance=numeric_variance,
        gaps=gaps,
        shares=shares,
    )


def usable_variance(variance):
    # A constant column has nothing to scale: dividing by 1 keeps its values (all equal
    # to the mean, so 0) rather than dividing by zero for a value never seen in training.
    return np.where(variance > 0, variance, 1.0)
