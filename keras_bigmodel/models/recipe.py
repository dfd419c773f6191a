"""What a model recipe provides: preprocessing, the network dataset, the network, the wrapper."""

import dataclasses
import functools


class Recipe:
    """A model family: subclasses set the class attributes and implement the methods.

    A recipe never reads a file: it names its `reader` (a key of
    `keras_bigmodel.data.reader.READERS`), and the trainer gives it what the reader read.
    The trainer calls, in this order: `fit_preprocessing` on the training data,
    `network_dataset` for training and validation batches, `build_network` inside the
    distribution strategy's scope, and after training `end_to_end`, whose model takes raw
    inputs and is what `model.keras`, `eval`, `predict` and `export` use.
    """

    #: the name `bigmodel train NAME` uses.
    name = None
    #: `classification` (softmax over classes) or `regression` (one value).
    task = "classification"
    #: the kind of input this model reads: `text_table`, `feature_table` or `image_folder`.
    reader = None
    #: the dataclass of this model's own options; the reader's are added to them (see
    #: `options_class`).
    Options = None
    #: defaults for shared training options that suit this model better than the global ones.
    train_defaults = {}
    #: one line for `bigmodel train --help`.
    summary = ""
    #: why `export --quantize int8` cannot quantize this model, or None where it can.
    int8_refusal = None
    #: whether the network's training step is many small operations (a recurrent loop,
    #: attention over short texts), which split over every core spend more on handing
    #: out work than they gain: training then gives each operation fewer threads
    #: (`keras_bigmodel.strategy.configure_threads`).
    small_operations = False

    @functools.cached_property
    def data_reader(self):
        """The `Reader` instance of `reader`."""
        from keras_bigmodel.data.reader import get_reader

        return get_reader(self.reader)

    @functools.cached_property
    def options_class(self):
        """The dataclass of every option of `bigmodel train NAME` but the shared ones: the
        reader's (which columns, what image size), then the model's own."""
        from keras_bigmodel.data.kinds import KINDS

        name = f"{type(self).__name__}Options"
        return dataclasses.make_dataclass(
            name, [], bases=(self.Options, KINDS[self.reader].options)
        )

    def fit_preprocessing(self, data, options, seed):
        """Adapts the preprocessing (vocabulary, normalisation) to the training data.

        Args:
            data: the reader's `keras_bigmodel.data.reader.TrainingData`: its
                `adapt_examples`, `layout` and `statistics`.
            options: the recipe's options.
            seed: the run's seed.
        """
        raise NotImplementedError

    def network_dataset(self, batches, preprocessing, options):
        """Maps the reader's batches of `(inputs, targets)` to `(network inputs, targets)`.

        The reader's `inputs` are a dict of batched tensors (raw text, column values, or
        decoded pixels; see each reader); a recipe's preprocessing that the network does
        not hold (vectorizing text, standardising columns) runs here, in the pipeline.
        """
        raise NotImplementedError

    def length_of(self, preprocessing, options):
        """Returns a function from a dict of batched raw input tensors to each row's length
        (int64), by which the reader batches rows of similar length together; or `None`
        where rows have no length that costs (the default)."""
        return None

    def build_network(self, preprocessing, options, num_outputs):
        """Returns the trainable network, from preprocessed inputs to outputs."""
        raise NotImplementedError

    def end_to_end(self, network, preprocessing, options):
        """Returns the model from raw inputs (`Examples.inputs`) to probabilities (or values)."""
        raise NotImplementedError

    def settled_options(self, preprocessing):
        """Returns the options left unset (None) that the adapted preprocessing decided, by
        name, so `run.yaml` records the configuration the model was built with (the text
        models' `embedding_dim`: 64, or the size of the `--embeddings` vectors)."""
        return {}

    def describe(self, preprocessing):
        """Returns what `run.yaml` records of the adapted preprocessing beyond the options,
        as a dict of sections (the text models': their pretrained vectors' coverage)."""
        return {}

    def fast_network(self, model):
        """Returns a faster inference graph of the end-to-end `model`'s network, computing
        what it computes (`keras_bigmodel.inference`), or None where there is none (the
        default)."""
        return None

    def serving_preprocessing(self, model):
        """Returns the preprocessing `end_to_end` takes, read back from the end-to-end
        `model`; needed where `fast_network` gives a network."""
        raise NotImplementedError

    def serving_model(self, model, options):
        """Returns what `export` serves for the end-to-end `model`: the same inputs and
        outputs around `fast_network`, or the model itself where there is none (export
        checks it against `model`)."""
        fast = self.fast_network(model)
        if fast is None:
            return model
        return self.end_to_end(fast, self.serving_preprocessing(model), options)

    def portable_model(self, model, options):
        """Returns a `keras_bigmodel.portable.PortableModel` of the end-to-end `model` for
        TFLite and ONNX, which cannot hold every preprocessing step: by default the model
        itself, of its raw inputs."""
        from keras_bigmodel.portable import raw_inputs

        return raw_inputs(model)

    def onnx_refusal(self, model):
        """Returns why `--format onnx` cannot express `model` (naming the formats that
        can), or None where it can."""
        return None


def softmax_output(features, dropout, num_outputs, added_scores=None):
    """The end of every classifier network: dropout, then a softmax over the classes.

    `added_scores`, float32 `[batch, num_outputs]` (the text models' `BagOfNgrams`), are
    added to the scores the features give before the softmax. The last layers compute in
    float32 even under mixed precision, so probabilities and the loss keep their
    precision. The softmax is named `probabilities`, and the scores from the features
    `network_scores` when there are added ones: the fused lstm export
    (`keras_bigmodel.inference`) finds them by these names.
    """
    import keras

    x = keras.layers.Dropout(dropout, name="dropout")(features)
    if added_scores is None:
        return keras.layers.Dense(
            num_outputs, activation="softmax", dtype="float32", name="probabilities"
        )(x)
    scores = keras.layers.Dense(num_outputs, dtype="float32", name="network_scores")(x)
    scores = keras.layers.Add(dtype="float32", name="scores")([scores, added_scores])
    return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(scores)
