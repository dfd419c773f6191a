"""Faster graphs of trained networks for serving, computing what the networks compute.

Keras runs an LSTM on the CPU as a `tf.while_loop` of some twenty small operations per
word, which at batch 1 costs far more in scheduling than in arithmetic. TensorFlow's
`BlockLSTMV2` runs a whole sequence in one kernel, with the same gate layout (input,
forget, cell, output) and activations as Keras' `LSTM`. `export` serves the network through
it, and `eval`, `predict` and training's `metrics.json` score through it; `model.keras` and
training itself never see this module. Export checks the result against `model.keras`
before it writes anything.
"""

import keras
import tensorflow as tf

from keras_bigmodel.layers import BagOfNgrams


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
