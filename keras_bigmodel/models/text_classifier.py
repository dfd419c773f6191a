"""What every text classifier shares: the vocabulary, word vectors (pretrained or not),
per-batch padding, the raw-text wrapper."""

import logging
from dataclasses import dataclass

from keras_bigmodel.config import option
from keras_bigmodel.errors import UserError
from keras_bigmodel.graph import plain
from keras_bigmodel.models.recipe import Recipe, softmax_output

log = logging.getLogger(__name__)
#: the size of each word vector when neither --embedding-dim nor --embeddings says.
DEFAULT_EMBEDDING_DIM = 64


def embedding_dropout_option(default):
    """`--embedding-dropout`, whose default each text model chooses."""
    return option(
        default,
        "Rate at which word-vector dimensions are dropped while training, each for all the "
        "words of a text (spatial dropout).",
        minimum=0.0,
        below=1.0,
    )


@dataclass
class TextClassifierOptions:
    """Vocabulary and embedding options of every text classifier."""

    max_tokens: int = option(
        20000, "Largest vocabulary, out-of-vocabulary token included.", minimum=3
    )
    min_frequency: int = option(
        2, "Keep only words seen at least this often in the training text.", minimum=1
    )
    max_length: int = option(200, "Tokens kept from the start of each text.", minimum=1)
    embedding_dim: int | None = option(
        None,
        f"Size of each word vector [default: {DEFAULT_EMBEDDING_DIM}, or the --embeddings file's].",
        minimum=1,
    )
    embeddings: str | None = option(
        None,
        "Start the word vectors from pretrained ones: a GloVe / word2vec text file, or a "
        ".npy file with its words (one per line, in row order) in FILE.vocab or "
        "vocabulary.txt beside it. Words it lacks start random.",
        metavar="FILE",
    )
    freeze_embeddings: bool = option(
        False, "Keep the --embeddings vectors as they are while training (all words)."
    )
    embedding_dropout: float = embedding_dropout_option(0.5)
    dropout: float = option(0.5, "Dropout rate before the classifier.", minimum=0.0, below=1.0)
    ngrams: int = option(
        2,
        "Also score each text linearly by its words and runs of up to N consecutive words, "
        "added to the network's scores (wide and deep); 0 for the network alone.",
        minimum=0,
        metavar="N",
    )
    ngram_buckets: int = option(
        2**17, "Rows of hashed scores for the runs of 2 or more words of --ngrams.", minimum=1
    )
    bucket_by_length: bool = option(
        True, "Batch texts of similar length together, so batches carry little padding."
    )


@dataclass
class TextPreprocessing:
    """The adapted vectorizer, shared by the training pipeline and the end-to-end model,
    and the word vectors the embedding starts from, if pretrained."""

    vectorizer: object
    #: `keras_bigmodel.embeddings.PretrainedVectors`, or None.
    vectors: object = None
    embedding_dim: int = DEFAULT_EMBEDDING_DIM

    @property
    def vocabulary_size(self):
        return self.vectorizer.vocabulary_size()


class TextClassifierRecipe(Recipe):
    """Base of the text classifiers: a subclass only builds its network from token ids."""

    task = "classification"
    reader = "text_table"
    #: the batch size of the TFLite file's `token_ids`: None for any.
    portable_batch = None
    # An epoch on 2 cores with one thread per operation: the lstm's 0.51-0.53 s against
    # 0.62 s, the transformer's 0.83-0.86 s against 1.06 s (SMS, the defaults, the same
    # weights). The cnn's convolutions lose 11% that way, so it keeps every core.
    small_operations = True

    def fit_preprocessing(self, data, options, seed):
        import keras

        from keras_bigmodel.layers import standardize_text

        # Keep the frequent words of the training text: a word seen once teaches the
        # embedding nothing that generalises.
        words, counts = word_counts(data.adapt_examples.inputs["text"])
        frequent = [
            (word, int(count))
            for word, count in zip(words, counts, strict=True)
            if count >= options.min_frequency
        ][: options.max_tokens - 2]
        kept = [word for word, _ in frequent]
        vectorizer = keras.layers.TextVectorization(
            standardize=standardize_text,
            output_mode="int",
            vocabulary=kept or ["[EMPTY]"],
            name="vectorizer",
        )
        if not options.embeddings:
            if options.freeze_embeddings:
                raise UserError(
                    "--freeze-embeddings keeps pretrained vectors as they are: give them "
                    "with --embeddings FILE."
                )
            dim = options.embedding_dim or DEFAULT_EMBEDDING_DIM
            return TextPreprocessing(vectorizer=vectorizer, embedding_dim=dim)
        from keras_bigmodel.embeddings import read_vectors

        # How often each entry of the vocabulary occurs: padding, out-of-vocabulary (every
        # word left out), then the kept words.
        kept_counts = [count for _, count in frequent]
        total = int(counts.sum())
        vectors = read_vectors(
            options.embeddings,
            vectorizer.get_vocabulary(),
            [0, total - sum(kept_counts), *kept_counts],
            seed,
        )
        if options.embedding_dim not in (None, vectors.dim):
            raise UserError(
                f"--embedding-dim {options.embedding_dim}: the vectors of --embeddings "
                f"{options.embeddings} have {vectors.dim} numbers each; leave --embedding-dim "
                "out, or give it the file's size."
            )
        coverage = vectors.coverage()
        log.info(
            "Pretrained vectors for %d of %d words (%.1f%%), %.1f%% of the training tokens, "
            "from %s.",
            coverage["vocabulary_found"],
            coverage["vocabulary"],
            100 * coverage["vocabulary_share"],
            100 * coverage["token_share"],
            options.embeddings,
        )
        return TextPreprocessing(vectorizer=vectorizer, vectors=vectors, embedding_dim=vectors.dim)

    def settled_options(self, preprocessing):
        return {"embedding_dim": preprocessing.embedding_dim}

    def describe(self, preprocessing):
        if preprocessing.vectors is None:
            return {}
        return {"pretrained_vectors": preprocessing.vectors.coverage()}

    def word_embedding(self, preprocessing, options):
        """The network's first layer: a vector per token id, 0 (padding) masked; started
        from the pretrained vectors where given, and frozen with --freeze-embeddings."""
        import keras

        vectors = preprocessing.vectors
        layer = keras.layers.Embedding(
            preprocessing.vocabulary_size,
            preprocessing.embedding_dim,
            mask_zero=True,
            trainable=vectors is None or not options.freeze_embeddings,
            name="embedding",
        )
        if vectors is not None:
            # Assigned, not passed as an initializer: an initializer's value would be
            # written into the model's config, the whole matrix as JSON.
            layer.build((None, None))
            layer.embeddings.assign(vectors.matrix)
        return layer

    def embedded_words(self, token_ids, preprocessing, options):
        """The word vectors of `token_ids` (`word_embedding`), then spatial dropout: while
        training, each text loses the same randomly chosen dimensions in all its words,
        so no single dimension of a word can carry a decision alone."""
        import keras

        x = self.word_embedding(preprocessing, options)(token_ids)
        return keras.layers.SpatialDropout1D(options.embedding_dropout, name="embedding_dropout")(x)

    def text_output(self, features, token_ids, preprocessing, options, num_outputs):
        """The network's end (`softmax_output`) from its `features` of each text, with
        the scores of a `BagOfNgrams` over its `token_ids` added where `--ngrams` asks.

        Words and word pairs took the lstm from 79.9% to 82.5% on customer reviews and
        from 87.3% to 89.0% on TREC questions, the transformer from 79.2% to 82.4% and
        from 87.5% to 89.2% (means over seeds 1-6; benchmarks/README.md), where TF-IDF
        bigrams with a logistic regression score 83.6% and 88.4%.
        """
        added = None
        if options.ngrams:
            from keras_bigmodel.layers import BagOfNgrams

            added = BagOfNgrams(
                preprocessing.vocabulary_size,
                num_outputs,
                ngrams=options.ngrams,
                buckets=options.ngram_buckets,
                dtype="float32",
                name="ngrams",
            )(token_ids)
        return softmax_output(features, options.dropout, num_outputs, added)

    def network_dataset(self, batches, preprocessing, options):
        import tensorflow as tf

        vectorizer, max_length = preprocessing.vectorizer, options.max_length

        def to_token_ids(inputs, labels):
            # Each batch is padded to its own longest text (zeros at the end), not to
            # max_length: most texts are far shorter, and the LSTM's cost grows with the
            # padded length.
            ids = clip_token_ids(vectorizer(inputs["text"]), max_length)
            longest = tf.reduce_max(tf.math.count_nonzero(ids, axis=1))
            return ids[:, :longest], labels

        dataset = batches.map(
            plain(to_token_ids), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def length_of(self, preprocessing, options):
        if not options.bucket_by_length:
            return None
        import tensorflow as tf

        vectorizer, max_length = preprocessing.vectorizer, options.max_length

        def length_of(inputs):
            # The padded length `network_dataset` gives a batch of these texts alone.
            ids = vectorizer(inputs["text"])
            return tf.clip_by_value(tf.math.count_nonzero(ids, axis=1), 1, max_length)

        return length_of

    def end_to_end(self, network, preprocessing, options):
        import keras

        text = keras.Input(shape=(), dtype="string", name="text")
        ids = clip_token_ids(preprocessing.vectorizer(text), options.max_length)
        probabilities = network(ids)
        return keras.Model({"text": text}, probabilities, name=f"{self.name}_end_to_end")

    def serving_preprocessing(self, model):
        return TextPreprocessing(model.get_layer("vectorizer"))

    def portable_model(self, model, options):
        # TFLite has no string splitting or vocabulary lookup: the file takes token ids, and
        # keras_bigmodel.export_tools.Tokenizer makes them from vocabulary.txt.
        import keras
        import numpy as np
        import tensorflow as tf

        from keras_bigmodel import export_tools
        from keras_bigmodel.portable import PortableModel

        vectorizer = model.get_layer("vectorizer")
        network = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        ids = keras.Input(batch_shape=(self.portable_batch, None), dtype="int32", name="token_ids")
        probabilities = network(keras.ops.cast(ids, "int64"))

        def prepare(examples):
            rows = np.asarray(
                clip_token_ids(vectorizer(examples.inputs["text"]), options.max_length)
            )
            # Real tokens are >= 1: a row's ids end where its padding starts.
            return [
                {"token_ids": row[: np.count_nonzero(row)][None].astype(np.int32)} for row in rows
            ]

        vocabulary = vectorizer.get_vocabulary()
        batch = -1 if self.portable_batch is None else self.portable_batch
        return PortableModel(
            model=keras.Model(ids, probabilities, name=f"{self.name}_token_ids"),
            specs=[tf.TensorSpec([self.portable_batch, None], tf.int32, name="token_ids")],
            prepare=prepare,
            preprocessing={
                "input": "token_ids",
                "dtype": "int32",
                "shape": [batch, -1],
                "tokenizer": "keras_bigmodel.export_tools.Tokenizer",
                "vocabulary": export_tools.VOCABULARY_FILE,
                "vocabulary_size": len(vocabulary),
                "max_length": options.max_length,
                "padding_id": export_tools.PADDING_ID,
                "unknown_id": export_tools.UNKNOWN_ID,
                "standardize": (
                    "lower-case ASCII letters; runs of 5 or more digits become the word "
                    f"{export_tools.NUMBER_TOKEN!r}; each of £ $ € becomes a word; every "
                    "character but ASCII letters, digits, '_', apostrophes and £ $ € "
                    "separates words"
                ),
                "ids": (
                    "each word's line number in vocabulary.txt (unknown words 1), the first "
                    "max_length of a text, at least one (a text without words is [1]); "
                    "shorter texts of a batch padded with 0 at the end"
                ),
            },
            files={export_tools.VOCABULARY_FILE: "\n".join(vocabulary) + "\n"},
        )

    def onnx_refusal(self, model):
        return (
            "text models need string splitting and vocabulary lookups that ONNX export "
            "cannot express; export with --format saved_model (raw text in) or --format "
            "tflite (token ids in, with vocabulary.txt)"
        )


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


#: texts split into words at a time while counting them.
COUNT_CHUNK_ROWS = 8192


def word_counts(texts):
    """Counts the words of `texts` as the vectorizer splits them (`standardize_text`, then
    whitespace). Returns `(words, counts)`, most frequent first, words of equal count in
    the order Keras' `TextVectorization.adapt` gives them (descending byte order), so the
    vocabulary is the one `adapt` makes; one pass over the texts, where `adapt` and a
    count of each kept word took two."""
    import collections

    import numpy as np
    import tensorflow as tf

    from keras_bigmodel.layers import standardize_text

    totals = collections.Counter()
    for start in range(0, len(texts), COUNT_CHUNK_ROWS):
        chunk = tf.constant(texts[start : start + COUNT_CHUNK_ROWS], tf.string)
        words, _, counts = tf.unique_with_counts(tf.strings.split(standardize_text(chunk)).values)
        totals.update(dict(zip(words.numpy().tolist(), counts.numpy().tolist(), strict=True)))
    # Keras leaves its padding and out-of-vocabulary tokens out of the vocabulary it learns.
    for reserved in (b"", b"[UNK]"):
        totals.pop(reserved, None)
    words = np.array(list(totals), dtype=object)
    counts = np.fromiter(totals.values(), dtype=np.int64, count=len(totals))
    order = np.lexsort((words, counts))[::-1]
    return [word.decode("utf-8") for word in words[order]], counts[order]
