"""Readers: one per kind of input, each owning everything about reading its data.

A reader lists and parses its files, checks them (naming the file, column or row of any
problem), encodes labels, splits off validation rows, fingerprints what it read, infers
what the data says about the model's inputs (its *layout*: feature columns and their kinds,
image size and channels), and gives batches to train on, held in memory or streamed from
disk. A model recipe names the reader it takes (`Recipe.reader`) and receives what the
reader learned as a `TrainingData`; it never opens a file.

The readers, by the name a recipe gives:

- `text_table`: a table with a text column and a label column (`text_table.py`).
- `feature_table`: a table of numeric and categorical columns and a numeric target
  (`feature_table.py`).
- `image_folder`: a folder of images with one sub-folder per class (`image_folder.py`).
"""

import importlib

from keras_bigmodel.data.kinds import KINDS

#: the readers, by the name a recipe gives, and the modules that hold them.
READERS = {name: kind.module for name, kind in KINDS.items()}
#: rows (or images) of each split `metrics.json` is computed on: all of them up to this
#: many, else a seeded sample. Scoring costs about as much as an epoch of this many rows.
METRIC_ROWS = 20_000


def get_reader(kind):
    """Returns the reader of a kind of input (a key of `READERS`)."""
    return importlib.import_module(READERS[kind]).READER


class Reader:
    """One kind of input. Subclasses set the class attributes and implement the methods."""

    #: the name recipes use, a key of `READERS`; what the kind accepts (its options, the
    #: data options `eval` and `predict` may override, the flags of its columns) is
    #: `keras_bigmodel.data.kinds.KINDS[kind]`.
    kind = None
    #: the dataclass of what the reader infers from the training data (or `None`).
    Layout = None
    #: `classes` (labels, for classifiers) or `values` (numbers, for regressions).
    targets = "classes"

    @property
    def data_options(self):
        return KINDS[self.kind].data_options

    @property
    def input_option(self):
        return KINDS[self.kind].input_option

    @property
    def target_option(self):
        return KINDS[self.kind].target_option

    def layout_from(self, recorded, options):
        """Returns the layout `run.yaml` recorded (`None` for a run of bigmodel 0.1, whose
        options said it; see `legacy_layout`)."""
        if self.Layout is None:
            return None
        if recorded is None:
            return self.legacy_layout(options)
        return self.Layout(**recorded)

    def legacy_layout(self, options):
        """The layout of a run that recorded none."""
        return None

    def read(self, data, options, layout=None, fmt=None, with_targets=True, nrows=None):
        """Reads and checks data for `eval`, `predict` and `export`.

        Args:
            data: the path (a table, a glob of shards, a folder) as the user gave it.
            options: the recipe's options (this reader's among them).
            layout: what the run's training data taught (`None` when reading for training).
            fmt: the table format, when the extension does not say.
            with_targets: read and check the labels or target values too.
            nrows: read only the first rows, up to this many.

        Returns:
            `Examples`.
        """
        raise NotImplementedError

    def open_training(self, settings, options):
        """Reads the data a run trains on (`settings.data`, `settings.val_data`), holding it
        in memory or streaming it from disk when it is larger than `--stream-above-mb`.

        Returns:
            A `TrainingData`.
        """
        raise NotImplementedError


def metric_rows(count, seed):
    """The rows of a split of `count` rows that `metrics.json` is computed on, in order:
    all of them, or a sample of `METRIC_ROWS` drawn by `seed`."""
    import numpy as np

    if count <= METRIC_ROWS:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, METRIC_ROWS, replace=False))


class TrainingData:
    """What a reader gives the trainer and the recipe: the data's facts and its batches.

    Attributes:
        layout: what the reader inferred (a `Reader.Layout`, or `None`).
        class_names: the sorted class names of a classifier's training data, else `None`.
        rows: the rows (images) read; `train_rows` and `validation_rows` of them.
        statistics: summaries the reader computed over every training row for the recipe
            (a feature table's sufficient statistics), or `None`.
    """

    layout = None
    class_names = None
    statistics = None
    rows = train_rows = validation_rows = 0

    @property
    def adapt_examples(self):
        """The training examples (all, or a bounded sample) preprocessing adapts on."""
        raise NotImplementedError

    def sample_examples(self):
        """A few training examples, whose raw inputs the run directory keeps."""
        return self.adapt_examples

    def metric_examples(self):
        """The examples `metrics.json` reports on, by split name (`train`, `validation`):
        each split whole, or `metric_rows` of it."""
        raise NotImplementedError

    def datasets(self, order, batch_size, workers=1, worker_index=0, length_of=None):
        """Returns `(train, validation)`: `tf.data` datasets of `(inputs, targets)` batches.

        `inputs` is a dict of batched tensors (see each reader for its names); `targets`
        are class indices (int32) or values (float32). The training dataset is endless,
        in `order` (a `keras_bigmodel.data.order.TrainingOrder`), from its start batch;
        validation is one pass in row order, or `None`. With several workers, each takes
        its share. `length_of` (from `Recipe.length_of`), given a dict of batched input
        tensors, returns each row's length: rows of similar length are then batched
        together (`keras_bigmodel.data.order.by_length`), and validation rows go from the
        shortest to the longest where the reader holds them.
        """
        raise NotImplementedError

    def describe(self):
        """What `run.yaml` records of the data."""
        raise NotImplementedError
