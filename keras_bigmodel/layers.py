"""The project's registered Keras layers, functions and optimizer, which saved models name.

`model.keras` files name `bigmodel>standardize_text`, `bigmodel>DecodeImages`,
`bigmodel>EndPaddedLSTM`, `bigmodel>PositionEmbedding`, `bigmodel>PaddingMask`,
`bigmodel>BagOfNgrams` and, in the network's training configuration,
`bigmodel>FusedAdam`.
`import keras_bigmodel` has this module imported as soon as Keras is (see
`keras_bigmodel.registration`), so `keras.models.load_model` finds them in safe mode.
"""

import keras
import tensorflow as tf

# One definition of the text rules, shared with the plain-Python tokenizer for TFLite.
from keras_bigmodel.export_tools import CURRENCY, LONG_NUMBER, NUMBER_TOKEN, SEPARATORS


@keras.saving.register_keras_serializable(package="bigmodel")
def standardize_text(texts):
    """Lower-cases text and splits words at punctuation, keeping signs that carry meaning.

    Unlike Keras' `lower_and_strip_punctuation`, which deletes punctuation and so glues
    "FREE>Ringtone!Reply" into one unknown word, this puts a space where punctuation was,
    makes `£`, `$` and `€` words of their own, and maps long numbers to `0number`.
    """
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, LONG_NUMBER, f" {NUMBER_TOKEN} ")
    texts = tf.strings.regex_replace(texts, CURRENCY, r" \1 ")
    return tf.strings.regex_replace(texts, SEPARATORS, " ")


def decode_and_resize(content, channels, height, width):
    """Decodes one encoded image to `channels` and resizes it to `height` x `width`.

    The one decoder of the package: the training pipeline maps it over the files and
    `DecodeImages` maps it over a batch of bytes, so both see the very same pixels.

    Returns:
        A float32 `[height, width, channels]` tensor of pixel values in 0..255.
    """
    image = decode_pixels(content, channels)
    shape = tf.shape(image)
    same_size = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
    enlarged = tf.logical_and(shape[0] <= height, shape[1] <= width)
    # Antialiasing keeps fine detail from aliasing away when large photos are shrunk. An
    # image already at the size is only converted: resizing would return the same pixels,
    # at a fifth of a millisecond per image. An image enlarged on both axes gets plain
    # bilinear interpolation, the very pixels the antialiased resize gives (its triangle
    # kernel is as wide as the pixel spacing then, and the same at the edges; they differ
    # by float rounding) from TensorFlow's `ResizeBilinear`: an 8x8 digit to 32x32 in
    # 6 us instead of the 138 us of the general `ScaleAndTranslate` (the cnn export's
    # step stats, on an Intel host).
    return tf.cond(
        same_size,
        lambda: tf.cast(image, tf.float32),
        lambda: tf.cond(
            enlarged,
            lambda: tf.image.resize(image, [height, width], method="bilinear"),
            lambda: tf.image.resize(image, [height, width], method="bilinear", antialias=True),
        ),
    )


def decode_pixels(content, channels):
    """Decodes one encoded image as stored and converts it to `channels` (1 or 3).

    Returns:
        A uint8 `[height, width, channels]` tensor, at the image's own size.
    """
    # Decoded as stored, then converted here: TensorFlow's decoders refuse some requests
    # (a GIF, a BMP or a CMYK JPEG as one channel) that `decoded_shapes` would not catch.
    image = tf.io.decode_image(content, expand_animations=False)
    image.set_shape([None, None, None])
    colour = tf.shape(image)[-1] >= 3
    if channels == 1:
        image = tf.cond(
            colour, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1]
        )
    else:
        image = tf.cond(colour, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    image.set_shape([None, None, channels])
    return image


@keras.saving.register_keras_serializable(package="bigmodel")
class DecodeImages(keras.layers.Layer):
    """Decodes a batch of encoded PNG, JPEG, GIF or BMP images to same-sized pixels.

    Takes a `[batch]` string tensor, returns float32 `[batch, height, width, channels]`
    pixel values in 0..255, as `decode_and_resize` gives them.
    """

    def __init__(self, height, width, channels, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width, self.channels = height, width, channels
        # Decoding is a string operation XLA cannot compile.
        self.supports_jit = False

    def call(self, contents):
        return tf.map_fn(
            lambda content: decode_and_resize(content, self.channels, self.height, self.width),
            contents,
            fn_output_signature=tf.TensorSpec([self.height, self.width, self.channels], tf.float32),
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, self.channels)

    def get_config(self):
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
        }


@keras.saving.register_keras_serializable(package="bigmodel")
class PositionEmbedding(keras.layers.Layer):
    """Adds a vector for each position to a sequence of word vectors.

    `kind` says which vectors: `learned` ones, or the fixed `sinusoidal` ones of
    "Attention is all you need" (position p, dimension 2i: sin(p / 10000^(2i/dim)), 2i+1:
    its cosine), which the network cannot fit to the training positions. Either is a
    `[max_length, dim]` table, fixed ones kept as a non-trainable weight, so the saved
    model and its exports hold the same table. Takes `[batch, length, dim]` with
    `length <= max_length`, returns the same shape; the padding mask passes through.
    """

    def __init__(self, max_length, kind="learned", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("learned", "sinusoidal"):
            raise ValueError(f"PositionEmbedding: kind must be learned or sinusoidal, not {kind!r}")
        self.max_length = max_length
        # Models saved before `kind` existed have learned positions: the default.
        self.kind = kind
        self.supports_masking = True

    def build(self, input_shape):
        learned = self.kind == "learned"
        self.positions = self.add_weight(
            shape=(self.max_length, input_shape[-1]),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05) if learned else "zeros",
            trainable=learned,
            name="positions",
        )
        if not learned:
            self.positions.assign(sinusoidal_positions(self.max_length, input_shape[-1]))

    def call(self, inputs):
        length = keras.ops.shape(inputs)[1]
        return inputs + keras.ops.cast(self.positions[:length], inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length, "kind": self.kind}


@keras.saving.register_keras_serializable(package="bigmodel")
class PaddingMask(keras.layers.Layer):
    """Which positions of `[batch, words]` token ids hold words: `[batch, words]` booleans,
    false where the id is 0 (padding)."""

    def call(self, ids):
        return keras.ops.not_equal(ids, 0)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="bigmodel")
class EndPaddedLSTM(keras.layers.LSTM):
    """Keras' `LSTM` for texts padded at the end, which trains without masking each step.

    With a padding mask, Keras' loop keeps each row's state through its padded steps:
    three selections per step, and their gradients. Where padding only ends a row, as
    bigmodel pads token ids, the outputs at the words need no mask: reading forwards, the
    padding comes after every word; reading backwards (`go_backwards`, as `Bidirectional`
    makes it), each row's words are put at its end first, so the loop reads them from the
    last one before any padding, and the outputs are put back in place. The outputs at
    padded positions are then not zeros but whatever the loop computed there; the mask
    travels on with the outputs, and masked layers after this one (`GlobalAveragePooling1D`)
    leave them out. On the SMS data an epoch took 0.85 s instead of 0.94 s with the
    issue's seed sizes, and 0.68 s instead of 0.81 s with the defaults (bidirectional),
    with the same metrics to the last digit (an Intel host, 2 cores).

    Only training takes this path, and only where every output is returned and nothing
    else (`return_sequences`, no states, not stateful or unrolled), on a machine without a
    GPU (with one, Keras runs cuDNN's kernel). Inference, the saved model's graph and its
    exports compute as Keras' `LSTM` does.
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if (
            not training
            or mask is None
            or not self.return_sequences
            or self.return_state
            or self.stateful
            or self.unroll
            or tf.config.list_logical_devices("GPU")
        ):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, list | tuple):
            mask = mask[0]
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        if self.go_backwards:
            # [pad, w0 .. wn]: read from its end, the words come first, from the last one.
            sequences = _words_last(sequences, lengths)
        # Keras' generic loop (`RNN`), which `LSTM` calls where it cannot use cuDNN.
        last, outputs, states = keras.layers.RNN.inner_loop(
            self, sequences, initial_state, None, training=training
        )
        if self.go_backwards:
            # The outputs in the order Keras' masked loop gives them: the padded steps,
            # then one for each word from the last.
            outputs = _words_last(outputs, lengths)
        return last, outputs, states


def _words_last(sequences, lengths):
    """Each row of `[batch, steps, ...]` with its first `lengths` steps moved to its end,
    in order, and the rest before them: `[w0, w1, w2, p0, p1]` becomes
    `[p1, p0, w0, w1, w2]`."""
    reversed_words = tf.reverse_sequence(sequences, lengths, seq_axis=1, batch_axis=0)
    return tf.reverse(reversed_words, axis=[1])


@keras.saving.register_keras_serializable(package="bigmodel")
class FusedAdam(keras.optimizers.Adam):
    """Keras' `Adam`, each variable updated by TensorFlow's fused `ResourceApplyAdam`.

    Keras' update is some fifteen operations per variable, each a pass over the variable's
    size, traced into every training step; TensorFlow's kernel computes the same update
    (the same bias-corrected step, epsilon outside the square root) in one. On the SMS
    lstm with the issue's seed sizes, the first epoch took 0.17 s less (tracing) and each
    later one 0.07 s less. The floating-point order differs, so weights differ from
    Keras' by rounding (4.8e-7 after 50 steps in the test), which training then carries
    on: held-out SMS accuracy over seeds 1-3 was 98.77% against 98.83% with the seed's
    sizes and 98.89% against 98.86% with the defaults (1,115 texts: a text is 0.09%).

    `amsgrad` runs Keras' update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)

        def constant(value):
            return tf.cast(value, dtype)

        # Keras' update reads a sparse gradient (an embedding's) as dense as well.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(constant(self.beta_1), step),
            beta2_power=tf.pow(constant(self.beta_2), step),
            lr=constant(learning_rate),
            beta1=constant(self.beta_1),
            beta2=constant(self.beta_2),
            epsilon=constant(self.epsilon),
            grad=tf.convert_to_tensor(gradient),
        )


def sinusoidal_positions(max_length, dim):
    """The `[max_length, dim]` float32 table of fixed sinusoidal position vectors."""
    import numpy as np

    positions = np.arange(max_length)[:, None]
    pairs = np.arange(dim)[None, :] // 2
    angles = positions / np.power(10000.0, 2 * pairs / dim)
    odd = np.arange(dim)[None, :] % 2 == 1
    return np.where(odd, np.cos(angles), np.sin(angles)).astype("float32")


#: the multiplier of `BagOfNgrams`' hash: a prime, so runs that differ in any word differ.
NGRAM_HASH_PRIME = 1_000_003


@keras.saving.register_keras_serializable(package="bigmodel")
class BagOfNgrams(keras.layers.Layer):
    """Scores texts by the words and runs of consecutive words they hold: a linear model
    over a bag of n-grams, as fastText's classifier or a logistic regression over bigrams.

    Takes `[batch, words]` token ids padded with 0 at the end, returns `[batch, outputs]`
    float32 scores. Each token id has a row of scores per output; each run of 2 to
    `ngrams` consecutive words is hashed to one of `buckets` further rows. A text's scores
    are the sum of its n-grams' rows over the square root of their number, so a long text
    does not grow confident from its length alone, times `gain`.

    The rows start at zero. Adam moves every weight by about its learning rate per step,
    whatever the gradient's size, so at 1e-3 a row would move 0.05 in an epoch of 50
    steps: `gain` multiplies the scores, so the table learns that many times faster than
    the network beside it.
    """

    def __init__(self, vocabulary_size, outputs, ngrams=2, buckets=2**17, gain=30.0, **kwargs):
        super().__init__(**kwargs)
        if ngrams < 1 or buckets < 1:
            raise ValueError(
                f"BagOfNgrams: ngrams and buckets must be at least 1, not {ngrams} and {buckets}"
            )
        self.vocabulary_size, self.outputs = vocabulary_size, outputs
        self.ngrams, self.buckets, self.gain = ngrams, buckets, gain

    def build(self, input_shape):
        rows = self.vocabulary_size + (self.buckets if self.ngrams > 1 else 0)
        self.table = self.add_weight(
            shape=(rows, self.outputs), initializer="zeros", name="table", dtype="float32"
        )

    def call(self, ids):
        ops = keras.ops
        ids = ops.cast(ids, "int64")
        present = ids > 0
        rows, counted = [ids], [present]
        run = ids
        for n in range(2, self.ngrams + 1):
            # The hash of the n words ending at each position, from that of the n-1 before.
            run = (run[:, :-1] * NGRAM_HASH_PRIME + ids[:, n - 1 :]) % self.buckets
            rows.append(run + self.vocabulary_size)
            # Padding only ends a text: a run is all words where its last one is a word.
            counted.append(present[:, n - 1 :])
        rows = ops.concatenate(rows, axis=1)
        counted = ops.cast(ops.concatenate(counted, axis=1), "float32")
        # expand_dims, not [..., None]: TFLite has no built-in slice adding an axis.
        scores = ops.sum(ops.take(self.table, rows, axis=0) * ops.expand_dims(counted, -1), axis=1)
        number = ops.maximum(ops.sum(counted, axis=1, keepdims=True), 1.0)
        return scores * (self.gain / ops.sqrt(number))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "outputs": self.outputs,
            "ngrams": self.ngrams,
            "buckets": self.buckets,
            "gain": self.gain,
        }
