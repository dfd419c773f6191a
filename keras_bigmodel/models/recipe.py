"""What a model recipe provides: reading its data, preprocessing, the network, the wrapper."""


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
