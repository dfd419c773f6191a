"""The feature table reader: numeric and categorical columns and a numeric target.

Every feature column is one input, named after the column (see `features.input_name`): a
numeric column is float32 with NaN for an empty cell, a categorical one is strings with ""
for an empty cell. What the training table says about its columns (which are features,
which of them categorical) is the reader's *layout*, recorded in `run.yaml`, so `eval` and
`predict` read any table the same way whatever other columns it has.

Besides examples, the reader gives the recipe `FeatureStatistics` of every training row,
accumulated in the same pass that reads them: the first and second moments of the raw
columns (numbers with 0 for a gap, an indicator of each gap, one-hot categories) and of the
target. Every statistic a linear model's preprocessing and its least-squares optimum need
is a function of them, so a table streamed from disk reaches the same optimum as one held
in memory.
"""

import logging
from dataclasses import dataclass

import numpy as np

from keras_bigmodel.data import features
from keras_bigmodel.data.examples import Examples
from keras_bigmodel.data.kinds import OOV_TOKEN
from keras_bigmodel.data.sources import TableReader
from keras_bigmodel.errors import UserError

log = logging.getLogger(__name__)

#: one pass follows every category while the raw columns number at most this many; past
#: it, a second pass follows only the categories kept.
ONE_PASS_COLUMNS = 1024
#: rows turned into raw columns at a time, bounding the memory the moments take.
BLOCK_VALUES = 2**22


@dataclass
class FeatureLayout:
    """The feature columns of the training table, in order, and which are categorical."""

    features: list
    categorical: list

    @property
    def input_names(self):
        """Each feature column's model input name, in column order."""
        return features.input_names(self.features, "the training table")


class FeatureTableReader(TableReader):
    """Reads feature columns and a numeric target from a table, in memory or streamed."""

    kind = "feature_table"
    Layout = FeatureLayout
    targets = "values"

    def legacy_layout(self, options):
        # bigmodel 0.1 wrote the inferred columns into the options.
        return FeatureLayout(
            features=features.column_list(options.features),
            categorical=features.column_list(options.categorical) or [],
        )

    def infer_layout(self, frame, options, source):
        _require_target(options)
        chosen = features.choose_feature_columns(
            frame, options.target, features.column_list(options.features), source
        )
        categorical = features.column_list(options.categorical)
        if categorical is None:
            categorical = features.text_columns(frame, chosen, source)
        for column in categorical:
            if column not in chosen:
                raise UserError(
                    f"--categorical names '{column}', which is not a feature column; "
                    "fix --categorical or --features."
                )
        for column in chosen:
            if "," in str(column):
                raise UserError(
                    f"{source}: column '{column}' has a comma in its name, which a "
                    "comma-separated --features cannot name; rename the column."
                )
        features.input_names(chosen, source)
        return FeatureLayout(
            features=[str(c) for c in chosen], categorical=[str(c) for c in categorical]
        )

    def columns(self, options, layout):
        return list(layout.features), options.target

    def read(self, data, options, layout=None, fmt=None, with_targets=True, nrows=None):
        if with_targets:
            _require_target(options)
        return super().read(data, options, layout, fmt, with_targets, nrows)

    def examples_from_frame(
        self, frame, source, paths, options, layout, with_targets=True, first_row=0
    ):
        inputs = {}
        for column, name in layout.input_names.items():
            if column in layout.categorical:
                inputs[name] = features.category_values(frame[column])
            else:
                inputs[name] = features.numeric_values(frame[column], source, column, first_row)
        targets = None
        if with_targets:
            targets = features.target_values(
                frame[options.target], source, options.target, first_row
            )
        return Examples(
            inputs=inputs,
            targets=targets,
            frame=frame,
            source=source,
            paths=paths,
            target_name=options.target,
        )

    def stream_inputs(self, columns, options, layout):
        import tensorflow as tf

        inputs = {}
        for (column, name), values in zip(layout.input_names.items(), columns, strict=True):
            if column in layout.categorical:
                inputs[name] = values
            else:
                # An empty cell is a gap, and JSON's true and false are 1 and 0, as in a
                # table read whole.
                values = tf.strings.strip(values)
                values = tf.where(values == "True", "1", tf.where(values == "False", "0", values))
                values = tf.where(values == "", "nan", values)
                inputs[name] = tf.strings.to_number(values, tf.float32)
        return inputs

    def statistics(self, options, layout):
        names = layout.input_names
        return FeatureStatistics(
            numeric=[names[c] for c in layout.features if c not in layout.categorical],
            categorical={names[c]: c for c in layout.categorical},
            max_categories=options.max_categories,
        )


def _require_target(options):
    if not options.target:
        raise UserError("--target is required: the numeric column to predict.")


@dataclass
class ColumnStatistics:
    """Moments of a feature table's training rows, over its raw columns.

    The raw columns are, in order: each numeric input with 0 for a gap (`numeric`), an
    indicator of each numeric input's gaps, and one indicator per kept category of each
    categorical input (`vocabularies`, most frequent first).

    Attributes:
        rows: the training rows.
        numeric: the numeric inputs' names.
        vocabularies: each categorical input's kept values, by input name.
        mean: `[raw columns]` means.
        second: `[raw columns, raw columns]` means of products.
        target_mean: the target's mean.
        target_second: the mean of its square.
        cross: `[raw columns]` means of each raw column times the target.
    """

    rows: int
    numeric: list
    vocabularies: dict
    mean: np.ndarray
    second: np.ndarray
    target_mean: float
    target_second: float
    cross: np.ndarray


class FeatureStatistics:
    """Accumulates `ColumnStatistics` over training rows, chunk by chunk.

    One pass follows every category it meets while there are at most `ONE_PASS_COLUMNS`
    raw columns. A table with more distinct categories leaves the statistics incomplete
    (`complete` is False): the caller then calls `restart()` and passes the rows again,
    and only the categories kept (the `max_categories` most frequent, counted in the first
    pass) are followed.
    """

    def __init__(self, numeric, categorical, max_categories):
        self.numeric = list(numeric)
        self.categorical = dict(categorical)  # input name -> column name, for messages
        self.max_categories = max_categories
        self.counts = {name: {} for name in self.categorical}
        self.kept = None  # the categories followed in a second pass
        self._reset()

    def _reset(self):
        self.complete = True
        self.index = {name: {} for name in self.categorical}
        self.rows = 0
        width = 2 * len(self.numeric)
        self.sum = np.zeros(width)
        self.products = np.zeros((width, width))
        self.target_sum = self.target_squares = 0.0
        self.cross = np.zeros(width)
        if self.kept is not None:
            for name, values in self.kept.items():
                self.index[name] = {value: i for i, value in enumerate(values)}

    def restart(self):
        """Starts a second pass that follows only the categories to keep."""
        self.kept = {name: self._vocabulary(name) for name in self.categorical}
        self._reset()

    @property
    def width(self):
        return 2 * len(self.numeric) + sum(len(index) for index in self.index.values())

    def add(self, examples):
        """Adds training examples (without missing targets) to the statistics."""
        rows = len(examples)
        if rows == 0:
            return
        codes = {name: self._codes(name, examples.inputs[name]) for name in self.categorical}
        if self.width > ONE_PASS_COLUMNS and self.kept is None:
            self.complete = False
        if not self.complete:
            return
        self._grow()
        targets = np.asarray(examples.targets, np.float64)
        self.rows += rows
        self.target_sum += float(targets.sum())
        self.target_squares += float(targets @ targets)
        block = max(1, BLOCK_VALUES // max(self.width, 1))
        for start in range(0, rows, block):
            part = slice(start, start + block)
            raw = self._raw_columns(examples, codes, part)
            self.sum += raw.sum(axis=0)
            self.products += raw.T @ raw
            self.cross += raw.T @ targets[part]

    def _codes(self, name, values):
        """Counts a categorical input's values; returns each row's raw column among the
        followed categories (-1 for one not followed)."""
        kinds, inverse, counts = np.unique(
            values.astype(str), return_inverse=True, return_counts=True
        )
        seen, index = self.counts[name], self.index[name]
        if self.kept is None:
            for kind, count in zip(kinds.tolist(), counts.tolist(), strict=True):
                seen[kind] = seen.get(kind, 0) + count
        followed = np.empty(len(kinds), dtype=np.int64)
        for i, kind in enumerate(kinds.tolist()):
            if kind not in index and self.kept is None and kind != OOV_TOKEN:
                index[kind] = len(index)
            followed[i] = index.get(kind, -1)
        return followed[inverse]

    def _grow(self):
        width = self.width
        grown = width - len(self.sum)
        if grown:
            self.sum = np.pad(self.sum, (0, grown))
            self.cross = np.pad(self.cross, (0, grown))
            self.products = np.pad(self.products, ((0, grown), (0, grown)))

    def _raw_columns(self, examples, codes, part):
        numbers = [np.asarray(examples.inputs[name][part], np.float64) for name in self.numeric]
        rows = len(next(iter(examples.inputs.values()))[part])
        raw = np.zeros((rows, self.width))
        if numbers:
            numbers = np.stack(numbers, axis=1)
            gaps = np.isnan(numbers)
            raw[:, : len(self.numeric)] = np.where(gaps, 0.0, numbers)
            raw[:, len(self.numeric) : 2 * len(self.numeric)] = gaps
        offset = 2 * len(self.numeric)
        for name in self.categorical:
            column = codes[name][part]
            known = column >= 0
            raw[np.flatnonzero(known), offset + column[known]] = 1.0
            offset += len(self.index[name])
        return raw

    def _vocabulary(self, name):
        """The kept categories of an input: the most frequent, ties in alphabetical order."""
        seen = {kind: count for kind, count in self.counts[name].items() if kind != OOV_TOKEN}
        kinds = np.asarray(list(seen), dtype=object)
        counts = np.asarray(list(seen.values()), dtype=np.int64)
        order = np.lexsort((kinds.astype(str), -counts))[: self.max_categories]
        return [str(kinds[i]) for i in order]

    def result(self):
        """Returns the `ColumnStatistics` over the kept categories.

        Raises:
            UserError: no training rows.
        """
        if not self.rows:
            raise UserError("no training rows with a target value.")
        vocabularies, keep = {}, list(range(2 * len(self.numeric)))
        offset = 2 * len(self.numeric)
        for name, column in self.categorical.items():
            vocabulary = self._vocabulary(name)
            distinct = len(self.counts[name])
            if distinct > self.rows / 2 and self.rows >= 20:
                log.warning(
                    "Column '%s' has %d different values in %d training rows: as categories it "
                    "can only memorise rows; leave it out with --features unless that is meant.",
                    column,
                    distinct,
                    self.rows,
                )
            if distinct > self.max_categories:
                log.info(
                    "Column '%s': keeping its %d most frequent of %d values (--max-categories).",
                    column,
                    self.max_categories,
                    distinct,
                )
            vocabularies[name] = vocabulary
            keep += [offset + self.index[name][value] for value in vocabulary]
            offset += len(self.index[name])
        keep = np.asarray(keep, dtype=np.int64)
        return ColumnStatistics(
            rows=self.rows,
            numeric=list(self.numeric),
            vocabularies=vocabularies,
            mean=self.sum[keep] / self.rows,
            second=self.products[np.ix_(keep, keep)] / self.rows,
            target_mean=self.target_sum / self.rows,
            target_second=self.target_squares / self.rows,
            cross=self.cross[keep] / self.rows,
        )


READER = FeatureTableReader()
