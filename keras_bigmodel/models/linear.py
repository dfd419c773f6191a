"""The linear regression: one Dense unit over standardised, imputed and one-hot features.

Its preprocessing and its starting weights come from the feature table reader's
`ColumnStatistics`: the means and second moments of the raw columns (numbers with 0 for a
gap, gap indicators, category indicators) over every training row. The standardised
features are an affine function of the raw columns (see `feature_map`), so their
covariance, and the least-squares weights, follow exactly from those moments, for a table
held in memory and for one streamed from disk alike.
"""

import logging
from dataclasses import dataclass

import numpy as np

from keras_bigmodel.config import option
from keras_bigmodel.data.kinds import OOV_TOKEN
from keras_bigmodel.errors import UserError
from keras_bigmodel.graph import plain
from keras_bigmodel.models.recipe import Recipe
from keras_bigmodel.models.registry import register

log = logging.getLogger(__name__)

#: fewer training rows than this cannot both fit and check a model.
MIN_TRAINING_ROWS = 10
#: eigenvalues of the feature covariance below this share of the largest count as zero:
#: those directions (one-hot columns that sum to a constant) are left out of the solution.
EIGENVALUE_CUTOFF = 1e-12


@dataclass
class LinearOptions:
    """Options of the linear regression."""

    l1: float = option(
        0.0,
        "L1 penalty on the weights (of standardised features, for a standardised target).",
        minimum=0.0,
    )
    l2: float = option(
        0.0,
        "L2 penalty on the weights (of standardised features, for a standardised target).",
        minimum=0.0,
    )


@dataclass
class LinearPreprocessing:
    """What the training rows taught before training: the feature layout and the
    least-squares weights that training starts from.

    Attributes:
        input_names: each feature column's model input name, in column order.
        categorical: the input names of the categorical columns.
        preprocessor: a Keras model from the inputs (a list, in `input_names` order) to the
            standardised feature matrix.
        target_mean: the training targets' mean; the network learns standardised targets.
        target_scale: their standard deviation (1 if they are constant).
        kernel: the weights that minimise the training loss, `--l1` and `--l2` included,
            solved in closed form (see `solve_least_squares`).
        bias: the intercept that goes with them.
    """

    input_names: dict
    categorical: list
    preprocessor: object
    target_mean: float
    target_scale: float
    kernel: np.ndarray
    bias: float

    def standardized_targets(self, targets):
        """Returns targets in the units the network learns: zero mean, unit variance."""
        return (np.asarray(targets, np.float64) - self.target_mean) / self.target_scale

    def feature_matrix(self, examples):
        """Returns the standardised features of examples, `[rows, features]` float32."""
        inputs = [examples.inputs[name] for name in self.input_names.values()]
        return np.asarray(self.preprocessor.predict(inputs, batch_size=4096, verbose=0))


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


@register
class LinearRegression(Recipe):
    """Impute, standardise and one-hot each column -> one Dense unit -> target units."""

    name = "linear"
    summary = "Linear regression on a table's numeric and categorical columns."
    task = "regression"
    reader = "feature_table"
    Options = LinearOptions
    # Training starts at the exact optimum of its own loss (see `fit_preprocessing`), so
    # the epochs only polish it. Plain SGD suits that: its steps shrink with the gradient,
    # which vanishes there, where Adam's steps keep their size and walk the weights away.
    # Every training row goes into the optimum, as in ordinary least squares: a held-out
    # tenth would cost small tables more accuracy than it tells (--val-split or --val-data
    # still give a validation score).
    train_defaults = {
        "val_split": 0.0,
        "epochs": 10,
        "batch_size": 256,
        "optimizer": "sgd",
        "learning_rate": 1e-3,
        "lr_schedule": "cosine",
    }

    def fit_preprocessing(self, data, options, seed):
        statistics, layout = data.statistics, data.layout
        rows = statistics.rows
        if rows < MIN_TRAINING_ROWS:
            raise UserError(
                f"{data.adapt_examples.source}: {rows} rows to train on; a linear model needs at "
                f"least {MIN_TRAINING_ROWS} (and more rows than features to be determined by "
                "them)."
            )
        names = layout.input_names
        mapping = feature_map(statistics)
        numeric = statistics.numeric
        gap_share = statistics.mean[len(numeric) : 2 * len(numeric)]
        for column, name in names.items():
            if name in numeric:
                empty = gap_share[numeric.index(name)] == 1.0
            else:
                empty = statistics.vocabularies[name] == [""]
            if empty:
                raise UserError(
                    f"{data.adapt_examples.source}: column '{column}' is empty in all {rows} "
                    "training rows; fill it or leave it out of --features."
                )
        width = len(mapping.offset)
        if rows <= width:
            log.warning(
                "%d training rows for %d features: the fit is not determined by the data "
                "alone; consider --l2.",
                rows,
                width,
            )
        # Moments of the standardised features and the target, from those of the raw columns.
        raw_covariance = statistics.second - np.outer(statistics.mean, statistics.mean)
        covariance = mapping.weights @ raw_covariance @ mapping.weights.T
        target_variance = max(statistics.target_second - statistics.target_mean**2, 0.0)
        target_scale = float(np.sqrt(target_variance)) or 1.0
        cross = mapping.weights @ (statistics.cross - statistics.mean * statistics.target_mean)
        feature_means = mapping.weights @ statistics.mean + mapping.offset
        kernel = solve_least_squares(covariance, cross / target_scale, options.l1, options.l2)
        return LinearPreprocessing(
            input_names=names,
            categorical=list(statistics.vocabularies),
            preprocessor=_build_preprocessor(names, mapping, statistics),
            target_mean=float(statistics.target_mean),
            target_scale=target_scale,
            kernel=kernel,
            # The standardised target's mean is 0.
            bias=float(-feature_means @ kernel),
        )

    def network_dataset(self, batches, preprocessing, options):
        import tensorflow as tf

        preprocessor, names = preprocessing.preprocessor, list(preprocessing.input_names.values())
        mean, scale = preprocessing.target_mean, preprocessing.target_scale

        def standardize(inputs, targets):
            features = preprocessor([inputs[name] for name in names])
            return features, ((tf.cast(targets, tf.float32) - mean) / scale)[:, None]

        dataset = batches.map(
            plain(standardize), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def build_network(self, preprocessing, options, num_outputs):
        import keras

        width = len(preprocessing.kernel)
        regularizer = None
        if options.l1 or options.l2:
            regularizer = keras.regularizers.L1L2(l1=options.l1, l2=options.l2)
        features = keras.Input(shape=(width,), name="features")
        # float32 even under --mixed-precision: the weights start at an exact solution that
        # 16-bit arithmetic would blur.
        dense = keras.layers.Dense(
            1, kernel_regularizer=regularizer, dtype="float32", name="weights"
        )
        network = keras.Model(
            features,
            dense(features),
            name=_unused_name("linear_regression", preprocessing.input_names.values()),
        )
        dense.set_weights(
            [preprocessing.kernel[:, None].astype(np.float32), np.float32([preprocessing.bias])]
        )
        return network

    def end_to_end(self, network, preprocessing, options):
        import keras

        inputs = {
            name: keras.Input(
                shape=(),
                dtype="string" if name in preprocessing.categorical else "float32",
                name=name,
            )
            for name in preprocessing.input_names.values()
        }
        standardized = network(preprocessing.preprocessor(list(inputs.values())))
        prediction = keras.layers.Rescaling(
            scale=preprocessing.target_scale,
            offset=preprocessing.target_mean,
            dtype="float32",
            name=_unused_name("prediction", inputs),
        )(standardized)
        return keras.Model(inputs, prediction, name=f"{self.name}_end_to_end")


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
    std = np.sqrt(_usable_variance(numeric_variance))
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
            row[count + j] = 1.0 / np.sqrt(_usable_variance(share * (1 - share)))
            rows.append(row)
            offset.append(-share * row[count + j])
    shares, start = {}, 2 * count
    for name, vocabulary in vocabularies.items():
        share = statistics.mean[start : start + len(vocabulary)]
        shares[name] = share
        sd = np.sqrt(_usable_variance(share * (1 - share)))
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


def _build_preprocessor(names, mapping, statistics):
    """Builds the model from raw column inputs to the standardised features of
    `feature_map`: numeric columns standardised with an empty cell at the mean (0 once
    standardised), gap indicators standardised, and categories one-hot and standardised,
    with a value never seen in training (or not kept) at the training mean of each
    category column, so it adds nothing to the prediction."""
    import keras
    from keras import ops

    numeric, vocabularies = statistics.numeric, statistics.vocabularies
    # Inner inputs get neutral names: a column may be named like one of the operations
    # below ("cast", "get_item"), and names must be unique within a model.
    columns = {
        name: keras.Input(
            shape=(), dtype="string" if name in vocabularies else "float32", name=f"column_{i}"
        )
        for i, name in enumerate(names.values())
    }
    parts = []
    if numeric:
        scaler = keras.layers.Normalization(
            mean=mapping.numeric_mean,
            variance=_usable_variance(mapping.numeric_variance),
            name="standardize_numbers",
        )
        stacked = ops.stack([columns[name] for name in numeric], axis=-1)
        parts.append(ops.nan_to_num(scaler(stacked), nan=0.0))
        if mapping.gaps:
            share = np.asarray(list(mapping.gaps.values()))
            indicators = ops.cast(
                ops.isnan(ops.stack([columns[name] for name in mapping.gaps], axis=-1)), "float32"
            )
            missing_scaler = keras.layers.Normalization(
                mean=share,
                variance=_usable_variance(share * (1 - share)),
                name="standardize_missing",
            )
            parts.append(missing_scaler(indicators))
    for i, (name, vocabulary) in enumerate(vocabularies.items()):
        share = mapping.shares[name]
        lookup = keras.layers.StringLookup(
            vocabulary=vocabulary,
            num_oov_indices=1,
            oov_token=OOV_TOKEN,
            output_mode="one_hot",
            name=f"categories_{i}",
        )
        one_hot = lookup(columns[name])
        known = keras.layers.Normalization(
            mean=share, variance=_usable_variance(share * (1 - share)), name=f"standardize_{i}"
        )(one_hot[:, 1:])
        # Index 0 is the unseen-value bucket: such a row takes the training mean of every
        # category column, which is 0 once standardised.
        parts.append(known * (1.0 - one_hot[:, :1]))
    features = ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    return keras.Model(
        list(columns.values()), features, name=_unused_name("preprocessing", names.values())
    )


def _usable_variance(variance):
    # A constant column has nothing to scale: dividing by 1 keeps its values (all equal
    # to the mean, so 0) rather than dividing by zero for a value never seen in training.
    return np.where(variance > 0, variance, 1.0)


def _unused_name(name, taken):
    """Returns `name`, or `name_1`, `name_2`... if a model input already has it."""
    taken = set(taken)
    candidate, suffix = name, 0
    while candidate in taken:
        suffix += 1
        candidate = f"{name}_{suffix}"
    return candidate
