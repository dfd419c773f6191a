"""The linear regression: one Dense unit over standardised, imputed and one-hot features."""

import logging
from dataclasses import dataclass

import numpy as np

from keras_bigmodel.config import option
from keras_bigmodel.data import features as feature_columns
from keras_bigmodel.data.examples import Examples
from keras_bigmodel.data.tables import read_table
from keras_bigmodel.errors import UserError
from keras_bigmodel.models.recipe import Recipe
from keras_bigmodel.models.registry import register

log = logging.getLogger(__name__)

#: fewer training rows than this cannot both fit and check a model.
MIN_TRAINING_ROWS = 10
#: StringLookup's own token for values outside the vocabulary, so never a category.
OOV_TOKEN = "[UNK]"


@dataclass
class LinearOptions:
    """Options of the linear regression."""

    target: str | None = option(
        None, "Numeric column to predict (required for training).", metavar="COLUMN"
    )
    features: str | None = option(
        None,
        "Feature columns, comma-separated [default: every column but the target].",
        metavar="A,B,...",
    )
    categorical: str | None = option(
        None,
        "Feature columns to one-hot as categories, comma-separated [default: those holding text].",
        metavar="A,B,...",
    )
    max_categories: int = option(
        1000,
        "Most frequent values of each categorical column kept as categories; rarer ones "
        "count as unseen.",
        minimum=1,
    )
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
            solved in closed form (see `least_squares`).
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
        return _feature_matrix(self.preprocessor, self.input_names, examples)


@register
class LinearRegression(Recipe):
    """Impute, standardise and one-hot each column -> one Dense unit -> target units."""

    name = "linear"
    summary = "Linear regression on a table's numeric and categorical columns."
    task = "regression"
    Options = LinearOptions
    # Which columns are features, and of what kind, is fixed inside the trained model.
    data_options = ("target",)
    input_option = "--features"
    target_option = "--target"
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

    def read_examples(self, data, options, fmt=None, with_targets=True, nrows=None):
        if not options.target:
            raise UserError("--target is required: the numeric column to predict.")
        table = read_table(data, fmt, nrows)
        frame, source = table.frame, table.name
        features = feature_columns.choose_feature_columns(
            frame, options.target, feature_columns.column_list(options.features), source
        )
        categorical = feature_columns.column_list(options.categorical)
        if categorical is None:
            categorical = feature_columns.text_columns(frame, features, source)
        for column in categorical:
            if column not in features:
                raise UserError(
                    f"--categorical names '{column}', which is not a feature column; "
                    "fix --categorical or --features."
                )
        for column in features:
            if "," in str(column):
                raise UserError(
                    f"{source}: column '{column}' has a comma in its name, which a "
                    "comma-separated --features cannot name; rename the column."
                )
        # Written back so that run.yaml records the exact columns and their kinds: eval and
        # predict then read any table the same way, whatever other columns it has.
        options.features = ",".join(map(str, features))
        options.categorical = ",".join(map(str, categorical))
        names = feature_columns.input_names(features, source)

        targets = None
        if with_targets:
            table.require_columns([options.target], "--target")
            targets = feature_columns.target_values(frame[options.target], source, options.target)
            empty = np.isnan(targets)
            if empty.all():
                raise UserError(f"{source}: target column '{options.target}' is empty.")
            if empty.any():
                log.warning(
                    "%s: skipping %d row(s) with an empty '%s' (the first is row %d).",
                    source,
                    int(empty.sum()),
                    options.target,
                    int(np.flatnonzero(empty)[0]) + 1,
                )
                frame = frame[~empty].reset_index(drop=True)
                targets = targets[~empty]

        inputs = {}
        for column, name in names.items():
            if column in categorical:
                inputs[name] = feature_columns.category_values(frame[column])
            else:
                inputs[name] = feature_columns.numeric_values(frame[column], source, column)
        return Examples(
            inputs=inputs,
            targets=targets,
            frame=frame,
            source=source,
            paths=table.paths,
            target_name=options.target,
        )

    def fit_preprocessing(self, examples, options, seed):
        rows = len(examples)
        if rows < MIN_TRAINING_ROWS:
            raise UserError(
                f"{examples.source}: {rows} rows to train on; a linear model needs at least "
                f"{MIN_TRAINING_ROWS} (and more rows than features to be determined by them)."
            )
        features = feature_columns.column_list(options.features)
        categorical_columns = feature_columns.column_list(options.categorical)
        names = feature_columns.input_names(features, examples.source)
        categorical = [names[c] for c in categorical_columns]
        for column, name in names.items():
            values = examples.inputs[name]
            empty = values == "" if name in categorical else np.isnan(values)
            if empty.all():
                raise UserError(
                    f"{examples.source}: column '{column}' is empty in all {rows} training "
                    "rows; fill it or leave it out of --features."
                )
        preprocessor = _build_preprocessor(examples, names, categorical, options)
        matrix = _feature_matrix(preprocessor, names, examples)
        if rows <= matrix.shape[1]:
            log.warning(
                "%d training rows for %d features: the fit is not determined by the data "
                "alone; consider --l2.",
                rows,
                matrix.shape[1],
            )
        target_mean = float(np.mean(examples.targets))
        target_scale = float(np.std(examples.targets)) or 1.0
        kernel, bias = least_squares(
            matrix, (examples.targets - target_mean) / target_scale, options.l1, options.l2
        )
        return LinearPreprocessing(
            input_names=names,
            categorical=categorical,
            preprocessor=preprocessor,
            target_mean=target_mean,
            target_scale=target_scale,
            kernel=kernel,
            bias=bias,
        )

    def network_dataset(self, examples, targets, preprocessing, options, batches):
        import tensorflow as tf

        # Preprocess every row once: each batch then only gathers its rows.
        matrix = tf.constant(preprocessing.feature_matrix(examples))
        values = tf.constant(preprocessing.standardized_targets(targets)[:, None], tf.float32)
        dataset = batches.map(
            lambda rows: (tf.gather(matrix, rows), tf.gather(values, rows)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
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
    """Solves the regression the network's loss defines, in float64.

    Minimises `mean((targets - matrix @ kernel - bias) ** 2) + l1 * sum(abs(kernel)) +
    l2 * sum(kernel ** 2)`, the mean squared error plus Keras' `L1L2` penalty. Without a
    penalty it is the least-norm solution where columns are collinear (as one-hot columns
    always are with the intercept).

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
    rows, width = matrix.shape
    column_means, target_mean = matrix.mean(axis=0), targets.mean()
    centred, centred_targets = matrix - column_means, targets - target_mean
    if l2 > 0:
        # Rows of sqrt(rows * l2) * I turn the L2 penalty into extra squared errors.
        stacked = np.vstack([centred, np.sqrt(rows * l2) * np.eye(width)])
        kernel = np.linalg.lstsq(stacked, np.concatenate([centred_targets, np.zeros(width)]))[0]
    else:
        kernel = np.linalg.lstsq(centred, centred_targets)[0]
    if l1 > 0:
        kernel = _with_l1(
            centred.T @ centred / rows, centred.T @ centred_targets / rows, kernel, l1, l2
        )
    return kernel, float(target_mean - column_means @ kernel)


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


def _build_preprocessor(examples, names, categorical, options):
    """Builds the model from raw column inputs to standardised features.

    Numeric columns are standardised with the training rows' mean and variance and an
    empty cell becomes the mean (0 once standardised); a column with empty training cells
    also gets a standardised missing-value indicator. A categorical column becomes
    standardised one-hot columns of its training values, and a value never seen in
    training gets the training mean of each, so it adds nothing to the prediction.
    """
    import keras
    from keras import ops

    # Inner inputs get neutral names: a column may be named like one of the operations
    # below ("cast", "get_item"), and names must be unique within a model.
    columns = {
        name: keras.Input(
            shape=(), dtype="string" if name in categorical else "float32", name=f"column_{i}"
        )
        for i, name in enumerate(names.values())
    }
    parts = []
    numeric = [name for name in names.values() if name not in categorical]
    if numeric:
        values = np.stack([examples.inputs[name] for name in numeric], axis=1).astype(np.float64)
        scaler = keras.layers.Normalization(
            mean=np.nanmean(values, axis=0),
            variance=_usable_variance(np.nanvar(values, axis=0)),
            name="standardize_numbers",
        )
        stacked = ops.stack([columns[name] for name in numeric], axis=-1)
        parts.append(ops.nan_to_num(scaler(stacked), nan=0.0))
        empty = np.isnan(values)
        with_gaps = [name for name, gaps in zip(numeric, empty.any(axis=0), strict=True) if gaps]
        if with_gaps:
            share = empty.mean(axis=0)[empty.any(axis=0)]
            indicators = ops.cast(
                ops.isnan(ops.stack([columns[name] for name in with_gaps], axis=-1)), "float32"
            )
            missing_scaler = keras.layers.Normalization(
                mean=share, variance=share * (1 - share), name="standardize_missing"
            )
            parts.append(missing_scaler(indicators))
    for i, name in enumerate(categorical):
        column = next(c for c, n in names.items() if n == name)
        vocabulary, share = _categories(examples.inputs[name], column, options.max_categories)
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


def _feature_matrix(preprocessor, names, examples):
    inputs = [examples.inputs[name] for name in names.values()]
    return np.asarray(preprocessor.predict(inputs, batch_size=4096, verbose=0))


def _categories(values, column, max_categories):
    """Returns a column's most frequent training values and the share of rows each has."""
    kinds, counts = np.unique(values.astype(str), return_counts=True)
    keep = kinds != OOV_TOKEN
    kinds, counts = kinds[keep], counts[keep]
    if len(kinds) > len(values) / 2 and len(values) >= 2 * MIN_TRAINING_ROWS:
        log.warning(
            "Column '%s' has %d different values in %d training rows: as categories it can "
            "only memorise rows; leave it out with --features unless that is meant.",
            column,
            len(kinds),
            len(values),
        )
    if len(kinds) > max_categories:
        log.info(
            "Column '%s': keeping its %d most frequent of %d values (--max-categories).",
            column,
            max_categories,
            len(kinds),
        )
    # Most frequent first; ties in alphabetical order, so the layout is reproducible.
    order = np.lexsort((kinds, -counts))[:max_categories]
    return kinds[order].tolist(), counts[order] / len(values)


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
