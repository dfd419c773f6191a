"""Faster graphs of trained networks for serving, computing what the networks compute.

Keras runs an LSTM on the CPU as a `tf.while_loop` of some twenty small operations per
word, which at batch 1 costs far more in scheduling than in arithmetic. TensorFlow's
`BlockLSTMV2` runs a whole sequence in one kernel, with the same gate layout (input,
forget, cell, output) and activations as Keras' `LSTM`. The transformer runs without
einsums (`FastTransformerClassifier`), the cnn with its batch normalizations folded into
its convolutions and its poolings as reductions (`FastCNNClassifier`). `export` serves the
networks through these, and `eval`, `predict` and training's `metrics.json` score through
them; `model.keras` and training itself never see this module. Export checks the result
against `model.keras` before it writes anything.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_bigmodel.layers import BagOfNgrams, EndPaddedLSTM, PaddingMask, PositionEmbedding


class FusedLSTMClassifier(keras.layers.Layer):
    """The inference pass of `LSTMTextClassifier`'s network, one fused kernel per direction.

    Texts are padded at the end (token 0), so each direction reads a row's real words
    only: forward, the outputs past a row's length are never used; backward, each row is
    reversed within its length (`tf.reverse_sequence`), as Keras' masked backward pass
    reads it. Takes `[batch, words]` token ids, returns the network's probabilities.
    """

    def __init__(self, network, directions, pooling, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        #: the `LSTM` layers, forward then (if bidirectional) backward.
        self.directions = directions
        self.pooling = pooling

    def call(self, ids):
        lengths = tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=1)
        words = tf.transpose(self.network.get_layer("embedding")(ids), [1, 0, 2])
        outputs = [_run(self.directions[0], words)]
        if len(self.directions) == 2:
            backwards = tf.reverse_sequence(words, lengths, seq_axis=0, batch_axis=1)
            outputs.append(
                tf.reverse_sequence(
                    _run(self.directions[1], backwards), lengths, seq_axis=0, batch_axis=1
                )
            )
        # [words, batch, features]: both directions side by side, as Bidirectional concats.
        states = tf.concat(outputs, axis=-1)
        if self.pooling == "mean":
            mask = tf.cast(tf.transpose(tf.sequence_mask(lengths, tf.shape(ids)[1])), states.dtype)
            features = (
                tf.reduce_sum(states * mask[..., None], axis=0)
                / tf.reduce_sum(mask, axis=0)[:, None]
            )
        else:
            # Forward: the state after a row's last word. Backward: after its first word,
            # which the reversed pass reads last and `reverse_sequence` put back at 0.
            last = tf.gather(tf.transpose(outputs[0], [1, 0, 2]), lengths - 1, batch_dims=1)
            features = tf.concat([last, *[o[0] for o in outputs[1:]]], axis=-1)
        return _classify(self.network, features, ids)

    def compute_output_shape(self, input_shape):
        return self.network.output_shape


def fused_lstm_classifier(network):
    """Returns `FusedLSTMClassifier(network)`, or None where the fused kernel would not
    compute the same function: a layer `LSTMTextClassifier` does not build, activations or
    a merge other than Keras' defaults, or a network computing in 16-bit floats (mixed
    precision). The pooling is read from the network, not from the run's options."""
    known = (
        keras.layers.InputLayer,
        keras.layers.Embedding,
        keras.layers.SpatialDropout1D,
        keras.layers.LSTM,
        EndPaddedLSTM,
        keras.layers.Bidirectional,
        keras.layers.GlobalAveragePooling1D,
        keras.layers.Dropout,
        keras.layers.Dense,
        # The end `softmax_output` builds with added scores (`--ngrams`).
        BagOfNgrams,
        keras.layers.Add,
        keras.layers.Activation,
    )
    recurrent = _recurrent_layer(network)
    if (
        recurrent is None
        or not all(type(layer) in known for layer in network.layers)
        or not network.get_layer("embedding").mask_zero
    ):
        return None
    directions = [recurrent]
    if isinstance(recurrent, keras.layers.Bidirectional):
        if recurrent.merge_mode != "concat":
            return None
        directions = [recurrent.forward_layer, recurrent.backward_layer]
    for layer in directions:
        cell = layer.cell
        if (
            cell.activation is not keras.activations.tanh
            or cell.recurrent_activation is not keras.activations.sigmoid
            or not cell.use_bias
            or layer.compute_dtype != "float32"
        ):
            return None
    pooling = "mean" if recurrent.return_sequences else "last"
    return FusedLSTMClassifier(network, directions, pooling, name=network.name)


def _recurrent_layer(network):
    for layer in network.layers:
        if isinstance(layer, keras.layers.LSTM) or (
            isinstance(layer, keras.layers.Bidirectional)
            and isinstance(layer.forward_layer, keras.layers.LSTM)
        ):
            return layer
    return None


def _classify(network, features, ids):
    """The network's probabilities from its pooled `features` and token `ids`: the
    softmax of the features' scores plus, where the network has them, its n-grams'."""
    layers = {layer.name: layer for layer in network.layers}
    if "ngrams" not in layers:
        return layers["probabilities"](features)
    scores = layers["network_scores"](features) + layers["ngrams"](ids)
    return layers["probabilities"](scores)


def _run(layer, words):
    """Runs one LSTM direction over `[words, batch, features]`; returns its outputs."""
    cell = layer.cell
    batch = tf.shape(words)[1]
    zeros = tf.zeros([batch, cell.units], words.dtype)
    no_peephole = tf.zeros([cell.units], words.dtype)
    return tf.raw_ops.BlockLSTMV2(
        seq_len_max=tf.cast(tf.shape(words)[0], tf.int64),
        x=words,
        cs_prev=zeros,
        h_prev=zeros,
        w=tf.concat([cell.kernel, cell.recurrent_kernel], axis=0),
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=cell.bias,
        cell_clip=0.0,
        use_peephole=False,
    )[6]


class FastTransformerClassifier(keras.layers.Layer):
    """The inference pass of `TransformerTextClassifier`'s network without einsums.

    Keras' `MultiHeadAttention` and `Dense` run as `Einsum`, `Transpose` and
    `BatchMatMulV2`. On CPUs where TensorFlow rewrites those into oneDNN's kernels (Intel
    ones, by default), they cost 0.9 of the 1.5 ms of a batch of one short text (one
    block, measured with TensorFlow's step stats). Here every projection is one two-dimensional
    `MatMul` of all the batch's words, and attention's two products over a text's words
    are elementwise products and sums, which no such rewrite touches and which cost
    little at the lengths of sentences. Takes `[batch, words]` token ids, returns the
    network's probabilities; a padded word is never attended to and not in the mean.
    """

    def __init__(self, network, blocks, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        #: the layer names' prefixes of the encoder blocks, in order.
        self.blocks = blocks

    def call(self, ids):
        layers = {layer.name: layer for layer in self.network.layers}
        present = ids > 0
        x = layers["position_embedding"](layers["embedding"](ids))
        batch, length, width = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
        for block in self.blocks:
            attended = _attention(layers[f"{block}_attention"], x, present)
            x = layers[f"{block}_attention_norm"](x + attended)
            hidden = _dense(layers[f"{block}_ff_hidden"], tf.reshape(x, [-1, width]))
            hidden = _dense(layers[f"{block}_ff_output"], hidden)
            x = layers[f"{block}_ff_norm"](x + tf.reshape(hidden, [batch, length, width]))
        weights = tf.cast(present, x.dtype)[..., None]
        features = tf.reduce_sum(x * weights, axis=1) / tf.reduce_sum(weights, axis=1)
        return _classify(self.network, features, ids)

    def compute_output_shape(self, input_shape):
        return self.network.output_shape


def fast_transformer_classifier(network):
    """Returns `FastTransformerClassifier(network)`, or None where it would not compute
    the same function: a layer or block `TransformerTextClassifier` does not build, or a
    network computing in 16-bit floats (mixed precision)."""
    known = (
        keras.layers.InputLayer,
        keras.layers.Embedding,
        keras.layers.SpatialDropout1D,
        PositionEmbedding,
        PaddingMask,
        keras.layers.Dropout,
        keras.layers.MultiHeadAttention,
        keras.layers.Add,
        keras.layers.LayerNormalization,
        keras.layers.Dense,
        keras.layers.GlobalAveragePooling1D,
        BagOfNgrams,
        keras.layers.Activation,
    )
    if not all(type(layer) in known for layer in network.layers):
        return None
    names = {layer.name for layer in network.layers}
    blocks = []
    while f"block{len(blocks) + 1}_attention" in names:
        blocks.append(f"block{len(blocks) + 1}")
    attentions = [network.get_layer(f"{block}_attention") for block in blocks]
    if (
        not blocks
        or not {"embedding", "position_embedding", "mean_over_words"} <= names
        # Saved before `PaddingMask`, a network of several blocks lost the padding mask
        # after the first one: its answers depend on the padding, which these do not.
        or (len(blocks) > 1 and "words" not in names)
        or not network.get_layer("embedding").mask_zero
        or any(layer.compute_dtype != "float32" for layer in network.layers)
        or any(
            layer.value_dim != layer.key_dim
            or not layer.use_bias
            or layer._attention_axes != (1,)
            or layer._output_shape is not None
            for layer in attentions
        )
    ):
        return None
    return FastTransformerClassifier(network, blocks, name=network.name)


def _dense(layer, x):
    """A `Dense` layer on `[rows, features]`: one `MatMul`."""
    y = tf.matmul(x, layer.kernel)
    if layer.use_bias:
        y = y + layer.bias
    return layer.activation(y)


#: the most elements of `_attention`'s elementwise products (batch x words x words x
#: features) before it multiplies matrices instead: 4 MB of float32, a text of 128 words
#: alone or 8 texts of 45.
ELEMENTWISE_ATTENTION = 2**20


def _attention(layer, x, present):
    """`MultiHeadAttention` `layer` of `x` to itself at inference, each word attending to
    the words `present` (`[batch, words]`) in its text: Keras' scaled dot products,
    padded keys' scores replaced by -1e9 before the softmax, as its masked softmax does.

    Small batches take elementwise products and sums; larger ones, where those would
    need more memory than is reasonable, batched matrix products."""
    batch, length, width = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
    heads, size = layer.num_heads, layer.key_dim
    words = tf.reshape(x, [-1, width])

    def project(dense):
        # EinsumDense "abc,cde->abde": a [width, heads, size] kernel, a [heads, size] bias.
        y = tf.matmul(words, tf.reshape(dense.kernel, [width, heads * size]))
        y = y + tf.reshape(dense.bias, [heads * size])
        return tf.reshape(y, [batch, length, heads, size])

    query = project(layer._query_dense) * layer._inverse_sqrt_key_dim
    key, value = project(layer._key_dense), project(layer._value_dense)

    def softmax_over(scores, axis, keys):
        scores = tf.where(keys, scores, -1e9)
        scores = tf.exp(scores - tf.reduce_max(scores, axis=axis, keepdims=True))
        return scores / tf.reduce_sum(scores, axis=axis, keepdims=True)

    def elementwise():
        # [batch, query word, key word, head]
        scores = tf.reduce_sum(tf.expand_dims(query, 2) * tf.expand_dims(key, 1), axis=-1)
        weights = softmax_over(scores, 2, present[:, None, :, None])
        return tf.reduce_sum(tf.expand_dims(weights, -1) * tf.expand_dims(value, 1), axis=2)

    def matrices():
        # [batch, head, query word, key word]
        heads_first = [0, 2, 1, 3]
        scores = tf.matmul(
            tf.transpose(query, heads_first), tf.transpose(key, heads_first), transpose_b=True
        )
        weights = softmax_over(scores, 3, present[:, None, None, :])
        return tf.transpose(tf.matmul(weights, tf.transpose(value, heads_first)), heads_first)

    rows, words_long = tf.cast(batch, tf.int64), tf.cast(length, tf.int64)
    elements = rows * words_long * words_long * (heads * size)
    attended = tf.cond(elements <= ELEMENTWISE_ATTENTION, elementwise, matrices)
    output = layer._output_dense
    y = tf.matmul(tf.reshape(attended, [-1, heads * size]), tf.reshape(output.kernel, [-1, width]))
    return tf.reshape(y + output.bias, [batch, length, width])


class FastCNNClassifier(keras.layers.Layer):
    """The inference pass of `CNNImageClassifier`'s network, each batch normalization
    folded into the convolution before it.

    At inference a batch normalization scales and shifts each channel by fixed amounts,
    so a convolution followed by one is a convolution with scaled filters and a bias: six
    normalizations of some five small operations each become six bias additions, which
    TensorFlow fuses with the convolutions and their ReLUs. Each 2x2 max pooling of
    known sizes is two reductions (`_max_of_pairs`). The random augmentation and
    the dropout, which pass pixels and features through unchanged at inference, are left
    out. Takes `[batch, height, width, channels]` pixels, returns the network's
    probabilities. The filters are folded once, from the weights the network has when
    this is made.
    """

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        #: ("conv", kernel, bias) for a folded convolution, ("layer", layer, None) else.
        self.steps = []
        layers = [layer for layer in network.layers if not _passes_through(layer)]
        for layer, after in zip(layers, [*layers[1:], None], strict=True):
            if isinstance(layer, keras.layers.Conv2D):
                kernel, bias = _folded(layer, after)
                kernel = self._fixed(f"{layer.name}_kernel", kernel)
                self.steps.append(("conv", kernel, self._fixed(f"{layer.name}_bias", bias)))
            elif _pools_pairs(layer):
                self.steps.append(("pool", layer, None))
            elif not isinstance(layer, keras.layers.BatchNormalization):
                self.steps.append(("layer", layer, None))

    def _fixed(self, name, value):
        weight = self.add_weight(shape=value.shape, initializer="zeros", trainable=False, name=name)
        weight.assign(value)
        return weight

    def call(self, pixels):
        x = pixels
        for kind, step, bias in self.steps:
            if kind == "conv":
                x = tf.nn.bias_add(tf.nn.conv2d(x, step, strides=1, padding="SAME"), bias)
            elif kind == "pool" and None not in x.shape[1:]:
                x = _max_of_pairs(x, step.padding)
            else:
                x = step(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.network.output_shape


def fast_cnn_classifier(network):
    """Returns `FastCNNClassifier(network)`, or None where it would not compute the same
    function: a layer `CNNImageClassifier` does not build, a convolution it does not make
    (strides, dilation, groups, an activation of its own, a layout other than channels
    last), one not followed by a batch normalization over its channels, a batch
    normalization that follows anything but a convolution, or a network computing in
    16-bit floats (mixed precision)."""
    known = (
        keras.layers.InputLayer,
        keras.Sequential,
        keras.layers.Rescaling,
        keras.layers.Conv2D,
        keras.layers.BatchNormalization,
        keras.layers.ReLU,
        keras.layers.MaxPooling2D,
        keras.layers.GlobalAveragePooling2D,
        keras.layers.Dropout,
        keras.layers.Dense,
    )
    layers = network.layers
    if not all(type(layer) in known for layer in layers) or not all(
        _passes_through(layer) for layer in layers if isinstance(layer, keras.Sequential)
    ):
        return None
    if any(layer.compute_dtype != "float32" for layer in layers):
        return None
    for layer, after in zip(layers, [*layers[1:], None], strict=True):
        # Only a normalization right after a convolution is folded; any other is left out.
        if isinstance(after, keras.layers.BatchNormalization) and not isinstance(
            layer, keras.layers.Conv2D
        ):
            return None
        if isinstance(layer, keras.layers.Conv2D) and (
            tuple(layer.strides) != (1, 1)
            or tuple(layer.dilation_rate) != (1, 1)
            or layer.groups != 1
            or layer.padding != "same"
            or layer.data_format != "channels_last"
            or layer.activation is not keras.activations.linear
            or not isinstance(after, keras.layers.BatchNormalization)
            or after.axis not in (-1, 3)
        ):
            return None
    return FastCNNClassifier(network, name=network.name)


#: random changes of training images, which pass images through unchanged at inference.
RANDOM_AUGMENTATIONS = (
    keras.layers.RandomFlip,
    keras.layers.RandomTranslation,
    keras.layers.RandomRotation,
    keras.layers.RandomZoom,
    keras.layers.RandomContrast,
)


def _passes_through(layer):
    """Whether `layer` returns its input unchanged at inference."""
    if isinstance(layer, keras.Sequential):
        return all(isinstance(inner, RANDOM_AUGMENTATIONS) for inner in layer.layers)
    return isinstance(layer, keras.layers.InputLayer | keras.layers.Dropout)


def _pools_pairs(layer):
    """Whether `layer` is a max pooling of each 2x2 square of pixels (channels last)."""
    return (
        isinstance(layer, keras.layers.MaxPooling2D)
        and tuple(layer.pool_size) == (2, 2)
        and tuple(layer.strides) == (2, 2)
        and layer.data_format == "channels_last"
    )


def _max_of_pairs(x, padding):
    """`MaxPooling2D(2, padding=padding)` of `[batch, height, width, channels]` with known
    sizes, as a reshape and two reductions: the maximum of each pair of rows, then of each
    pair of columns. On an Intel host with oneDNN, the default cnn's three poolings took
    134 us at batch 1 as `MaxPool` operations, which oneDNN runs, and 35 us as TensorFlow's
    own reductions (step stats of the digits export).
    """
    _, height, width, _ = x.shape
    if padding == "valid":
        # An odd last row or column is left out.
        x = x[:, : height - height % 2, : width - width % 2]
    else:
        # `same` pools an odd last row or column alone: paired with a copy of itself, its
        # maximum is itself.
        if height % 2:
            x = tf.concat([x, x[:, -1:]], axis=1)
        if width % 2:
            x = tf.concat([x, x[:, :, -1:]], axis=2)
    _, height, width, channels = x.shape
    rows = tf.reduce_max(tf.reshape(x, [-1, height // 2, 2, width // 2, 2 * channels]), axis=2)
    return tf.reduce_max(tf.reshape(rows, [-1, height // 2, width // 2, 2, channels]), axis=3)


def _folded(conv, norm):
    """The kernel and bias of `conv` followed by the batch normalization `norm` at
    inference, computed in 64-bit floats."""
    kernel = np.asarray(conv.kernel, np.float64)
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    scale = 1 / np.sqrt(np.asarray(norm.moving_variance, np.float64) + norm.epsilon)
    if norm.scale:
        scale = scale * np.asarray(norm.gamma, np.float64)
    shift = -np.asarray(norm.moving_mean, np.float64) * scale
    if norm.center:
        shift = shift + np.asarray(norm.beta, np.float64)
    return (kernel * scale).astype(np.float32), (bias * scale + shift).astype(np.float32)
