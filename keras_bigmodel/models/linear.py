"""The linear regression: one Dense unit over standardised, imputed and one-hot features.

Its preprocessing and its starting weights come from the feature table reader's
`ColumnStatistics`: the means and second moments of the raw columns (numbers with 0 for a
gap, gap indicators, category indicators) over every training row. The standardised
features are an affine function of the raw columns (see `feature_map`), so their
covariance, and the least-squares weights, follow exactly from those moments, for a table
held in memory and for one streamed from disk alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keras_bigmodel.config import option
from keras_bigmodel.data.kinds import OOV_TOKEN
from keras_bigmodel.errors import UserError
from keras_bigmodel.graph import plain
from keras_bigmodel.models.recipe import Recipe
from keras_bigmodel.models.registry import register

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: fewer training rows than this cannot both fit and check a model.
MIN_TRAINING_ROWS = 10


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
        import numpy as np

        return (np.asarray(targets, np.float64) - self.target_mean) / self.target_scale

    def feature_matrix(self, examples):
        """Returns the standardised features of examples, `[rows, features]` float32."""
        import numpy as np

        inputs = [examples.inputs[name] for name in self.input_names.values()]
        return np.asarray(self.preprocessor.predict(inputs, batch_size=4096, verbose=0))


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
        import numpy as np

        from keras_bigmodel.least_squares import feature_map, solve_least_squares

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
        import numpy as np

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

    def onnx_refusal(self, model):
        # tf2onnx cannot convert the categories' string lookup (LookupTableFindV2).
        categorical = [tensor.name for tensor in model.inputs if tensor.dtype == "string"]
        if not categorical:
            return None
        return (
            f"the categorical column(s) {', '.join(categorical)} need a string lookup that "
            "ONNX export cannot express; export with --format saved_model or --format tflite"
        )


def _build_preprocessor(names, mapping, statistics):
    """Builds the model from raw column inputs to the standardised features of
    `feature_map`: numeric columns standardised with an empty cell at the mean (0 once
    standardised), gap indicators standardised, and categories one-hot and standardised,
    with a value never seen in training (or not kept) at the training mean of each
    category column, so it adds nothing to the prediction."""
    import keras
    import numpy as np
    from keras import ops

    from keras_bigmodel.least_squares import usable_variance

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
            variance=usable_variance(mapping.numeric_variance),
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
                variance=usable_variance(share * (1 - share)),
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
            mean=share, variance=usable_variance(share * (1 - share)), name=f"standardize_{i}"
        )(one_hot[:, 1:])
        # Index 0 is the unseen-value bucket: such a row takes the training mean of every
        # category column, which is 0 once standardised.
        parts.append(known * (1.0 - one_hot[:, :1]))
    features = ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    return keras.Model(
        list(columns.values()), features, name=_unused_name("preprocessing", names.values())
    )


def _unused_name(name, taken):
    """Returns `name`, or `name_1`, `name_2`... if a model input already has it."""
    taken = set(taken)
    candidate, suffix = name, 0
    while candidate in taken:
        suffix += 1
        candidate = f"{name}_{suffix}"
    return candidate
