"""Models for formats that cannot hold a model's raw-input preprocessing (TFLite, ONNX).

TFLite's built-in operations and ONNX have no string splitting, vocabulary lookup or image
decoding. For those formats each recipe's `portable_model` gives a model of the inputs
that remain once that preprocessing is done (token ids, decoded pixels), with what a
caller needs to make them (`preprocessing.json`, `vocabulary.txt`) and a way to make them
from raw examples, by which export checks the file against `model.keras`.
"""

from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

#: the name scope of operations that stay in float32 in an int8 model (`keep_float`).
FLOAT_SCOPE = "keep_float"


@dataclass
class PortableModel:
    """A model of inputs a portable format can take, and how to make them.

    Attributes:
        model: the Keras model; its outputs are the end-to-end model's.
        specs: one `tf.TensorSpec` per input, named; the file's signature.
        prepare: maps `Examples` to a list of per-row feeds (dicts of NumPy arrays, each
            a batch of one), the inputs for each row of the examples.
        preprocessing: what `preprocessing.json` says a caller must do, or None when the
            model takes the raw inputs.
        files: other files for the version folder, by name (text content).
    """

    model: object
    specs: list
    prepare: object
    preprocessing: dict | None = None
    files: dict = field(default_factory=dict)


def raw_inputs(model):
    """The end-to-end model itself, for models whose preprocessing every format holds."""
    specs = [tf.TensorSpec([None], tensor.dtype, name=tensor.name) for tensor in model.inputs]

    def prepare(examples):
        return [
            {name: np.asarray(values[i : i + 1]) for name, values in examples.inputs.items()}
            for i in range(len(examples))
        ]

    return PortableModel(model=model, specs=specs, prepare=prepare)


def resize_weights(size_in, size_out):
    """The `[size_out, size_in]` matrix that resizes one axis as `tf.image.resize` does
    with `bilinear` and `antialias=True`: a triangle kernel, as wide as the scale when
    shrinking, its weights over the pixels inside the image summing to one."""
    scale = tf.cast(size_in, tf.float32) / float(size_out)
    support = tf.maximum(scale, 1.0)
    centres = (tf.range(size_out, dtype=tf.float32) + 0.5) * scale
    sources = tf.cast(tf.range(size_in), tf.float32) + 0.5
    weights = tf.maximum(0.0, 1.0 - tf.abs(centres[:, None] - sources[None, :]) / support)
    return weights / tf.reduce_sum(weights, axis=1, keepdims=True)


class ResizePixels(keras.layers.Layer):
    """Resizes a batch of uint8 images of any one size to `height` x `width`, float32.

    Matrix products with TFLite's and ONNX's built-in operations, computing what
    `keras_bigmodel.layers.decode_and_resize` computes (antialiased bilinear), which the
    stock converters cannot express (`ScaleAndTranslate`). Used at export only.
    """

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = height, width

    def call(self, images):
        with tf.name_scope(FLOAT_SCOPE):
            images = tf.cast(images, tf.float32)
            shape = tf.shape(images)
            rows = resize_weights(shape[1], self.height)
            columns = resize_weights(shape[2], self.width)
            x = tf.transpose(images, [0, 3, 1, 2])
            x = tf.matmul(tf.matmul(rows, x), columns, transpose_b=True)
            return tf.transpose(x, [0, 2, 3, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])
