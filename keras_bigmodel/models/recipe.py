"""What a model recipe provides: reading its data, preprocessing, the network, the wrapper."""

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


class Recipe:
    """A model family: subclasses set the class attributes and implement the methods.

    The trainer calls them in this order: `read_examples`, `fit_preprocessing` on the
    training rows only, `network_dataset` for training and validation, `build_network`
    inside the distribution strategy's scope, and after training `end_to_end`, whose model
    takes raw inputs and is what `model.keras`, `eval`, `predict` and `export` use.
    """

    #: the name `bigmodel train NAME` uses.
    name = None
    #: `classification` (softmax over classes) or `regression` (one value).
    task = "classification"
    #: the dataclass of this model's options, data options included.
    Options = None
    #: defaults for shared training options that suit this model better than the global ones.
    train_defaults = {}
    #: one line for `bigmodel train --help`.
    summary = ""
    #: the options that say how to read this model's data; `eval` and `predict` take them
    #: as overrides of what the run was trained with.
    data_options = ()
    #: whether tables too large for memory can be streamed (see the `stream_*` methods).
    streams = False
    #: the flags naming the input and target columns, for messages.
    input_option = "--data"
    target_option = "--data"

    def read_examples(self, data, options, fmt=None, with_targets=True, nrows=None):
        """Reads and checks data; returns `Examples` (targets only if `with_targets`, and
        only the first `nrows` rows if given)."""
        raise NotImplementedError

    def fit_preprocessing(self, examples, options, seed):
        """Adapts the preprocessing (vocabulary, normalisation) on the training examples."""
        raise NotImplementedError

    def network_dataset(self, examples, targets, preprocessing, options, batches):
        """Returns a `tf.data.Dataset` of `(network inputs, targets)` batches.

        `batches` is a dataset of int64 vectors of row indices into `examples`, one per
        batch: for training an endless stream, shuffled pass by pass
        (`keras_bigmodel.data.order.TrainingOrder`); for validation one pass in order. The
        recipe maps each to the batch of network inputs and targets, nothing more.
        """
        raise NotImplementedError

    def build_network(self, preprocessing, options, num_outputs):
        """Returns the trainable network, from preprocessed inputs to outputs."""
        raise NotImplementedError

    def end_to_end(self, network, preprocessing, options):
        """Returns the model from raw inputs to probabilities (or values)."""
        raise NotImplementedError

    def examples_from_frame(self, frame, source, paths, options, with_targets=True):
        """Turns a frame of this model's columns into `Examples` (streaming recipes)."""
        raise NotImplementedError

    def stream_columns(self, options):
        """The columns a stream reads: the inputs, then the target last (streaming recipes)."""
        raise NotImplementedError

    def stream_network_inputs(self, columns, preprocessing, options):
        """Maps a batch of input columns (string tensors, `stream_columns` order) to the
        network's inputs (streaming recipes)."""
        raise NotImplementedError
