"""What every text classifier shares: reading text tables, the vocabulary, per-batch padding."""

from dataclasses import dataclass

import numpy as np

from keras_bigmodel.config import option
from keras_bigmodel.data.examples import Examples
from keras_bigmodel.data.labels import label_strings
from keras_bigmodel.data.tables import read_table
from keras_bigmodel.models.recipe import Recipe


@dataclass
class TextClassifierOptions:
    """Data and vocabulary options of every text classifier."""

    text_column: str = option("text", "Column holding the text.")
    label_column: str = option("label", "Column holding the class label (string or integer).")
    max_tokens: int = option(
        20000, "Largest vocabulary, out-of-vocabulary token included.", minimum=3
    )
    min_frequency: int = option(
        2, "Keep only words seen at least this often in the training text.", minimum=1
    )
    max_length: int = option(200, "Tokens kept from the start of each text.", minimum=1)
    embedding_dim: int = option(64, "Size of each word vector.", minimum=1)
    dropout: float = option(0.5, "Dropout rate before the classifier.", minimum=0.0, below=1.0)


@dataclass
class TextPreprocessing:
    """The adapted vectorizer, shared by the training pipeline and the end-to-end model."""

    vectorizer: object

    @property
    def vocabulary_size(self):
        return self.vectorizer.vocabulary_size()


class TextClassifierRecipe(Recipe):
    """Base of the text classifiers: a subclass only builds its network from token ids."""

    task = "classification"
    data_options = ("text_column", "label_column")

    streams = True
    input_option = "--text-column"
    target_option = "--label-column"

    def read_examples(self, data, options, fmt=None, with_targets=True, nrows=None):
        table = read_table(data, fmt, nrows)
        table.require_columns([options.text_column], "--text-column")
        if with_targets:
            table.require_columns([options.label_column], "--label-column")
        return self.examples_from_frame(table.frame, table.name, table.paths, options, with_targets)

    def examples_from_frame(self, frame, source, paths, options, with_targets=True):
        texts = frame[options.text_column].fillna("").astype(str).to_numpy(dtype=object)
        targets = None
        if with_targets:
            targets = label_strings(frame[options.label_column], source, options.label_column)
        return Examples(
            inputs={"text": texts},
            targets=targets,
            frame=frame,
            source=source,
            paths=paths,
            target_name=options.label_column,
        )

    def stream_columns(self, options):
        return [options.text_column, options.label_column]

    def stream_network_inputs(self, columns, preprocessing, options):
        return clip_token_ids(preprocessing.vectorizer(columns[0]), options.max_length)

    def fit_preprocessing(self, examples, options, seed):
        import keras

        from keras_bigmodel.layers import standardize_text

        texts = examples.inputs["text"]
        # Count each word of the training text with Keras' own tokenizer, then keep the
        # frequent ones: a word seen once teaches the embedding nothing that generalises.
        probe = keras.layers.TextVectorization(standardize=standardize_text, output_mode="int")
        probe.adapt(texts, batch_size=1024)
        counts = np.zeros(probe.vocabulary_size(), dtype=np.int64)
        for start in range(0, len(texts), 1024):
            ids = np.asarray(probe(texts[start : start + 1024]))
            counts += np.bincount(ids.ravel(), minlength=len(counts))
        words = probe.get_vocabulary()[2:]  # past the padding and out-of-vocabulary tokens
        kept = [w for w, c in zip(words, counts[2:], strict=True) if c >= options.min_frequency]
        vectorizer = keras.layers.TextVectorization(
            standardize=standardize_text,
            output_mode="int",
            vocabulary=kept[: options.max_tokens - 2] or ["[EMPTY]"],
            name="vectorizer",
        )
        return TextPreprocessing(vectorizer=vectorizer)

    def network_dataset(self, examples, targets, preprocessing, options, batches):
        import tensorflow as tf

        vectorizer, max_length = preprocessing.vectorizer, options.max_length

        def to_token_ids(texts):
            ids = clip_token_ids(vectorizer(texts), max_length)
            # Ids are padded with zeros at the end only: 0 is the padding token.
            return tf.RaggedTensor.from_tensor(ids, padding=0)

        # Vectorize once, in parallel, and keep every text's token ids in memory: each batch
        # then only gathers its rows.
        texts = tf.data.Dataset.from_tensor_slices(examples.inputs["text"].astype(str))
        token_ids = tf.concat(
            list(texts.batch(1024).map(to_token_ids, num_parallel_calls=tf.data.AUTOTUNE)),
            axis=0,
        )
        labels = tf.constant(targets)
        # Each batch is padded to its own longest text, not to max_length: most texts are
        # far shorter, and the LSTM's cost grows with the padded length.
        dataset = batches.map(
            lambda rows: (tf.gather(token_ids, rows).to_tensor(0), tf.gather(labels, rows)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def end_to_end(self, network, preprocessing, options):
        import keras

        text = keras.Input(shape=(), dtype="string", name="text")
        ids = clip_token_ids(preprocessing.vectorizer(text), options.max_length)
        probabilities = network(ids)
        return keras.Model({"text": text}, probabilities, name=f"{self.name}_end_to_end")


def clip_token_ids(ids, max_length):
    """Keeps the first `max_length` token ids of each text, and at least one.

    A text with no token at all (empty, or punctuation only) becomes one out-of-vocabulary
    token, as a text of unknown words would: a row of padding alone would leave the
    recurrent layer and the masked mean with nothing to read. Built from `keras.ops`, so the
    training pipeline and the end-to-end model apply the very same steps.
    """
    import keras

    ids = keras.ops.pad(ids, [[0, 0], [0, 1]])[:, :max_length]
    # Real tokens are >= 1, so only a text without any has 0 in its first position.
    return keras.ops.concatenate([keras.ops.maximum(ids[:, :1], 1), ids[:, 1:]], axis=1)
