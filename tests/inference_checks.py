"""The check the serving graphs of `keras_bigmodel.inference` share: on random weights,
they compute what the Keras network computes, whatever the padding, and are not used
under mixed precision."""

from types import SimpleNamespace

import keras
import numpy as np

# Rows of 4, 1, 6 and 2 words, padded at the end as the vectorizer pads them.
PADDED_IDS = np.array(
    [[3, 7, 1, 9, 0, 0], [5, 0, 0, 0, 0, 0], [2, 4, 6, 8, 19, 12], [11, 13] + [0] * 4]
)


def check_serving_graph(recipe, options, convert, embedding_dim, atol):
    """Builds `recipe`'s network for 3 classes with random weights, biases and
    normalisations included (Keras starts them at 0 and 1), and checks `convert(network)`
    against it. Returns the converted layer."""
    # What build_network reads of TextPreprocessing, without a vocabulary to adapt.
    preprocessing = SimpleNamespace(vocabulary_size=20, vectors=None, embedding_dim=embedding_dim)
    network = recipe.build_network(preprocessing, options, 3)
    rng = np.random.default_rng(0)
    network.set_weights([rng.normal(0, 0.7, w.shape) for w in network.get_weights()])
    converted = convert(network)
    assert converted is not None
    expected = network(PADDED_IDS, training=False).numpy()
    np.testing.assert_allclose(converted(PADDED_IDS).numpy(), expected, atol=atol)
    # A row's answer does not depend on the padding beside it.
    np.testing.assert_allclose(converted(PADDED_IDS[1:2, :1]).numpy(), expected[1:2], atol=atol)
    # Mixed precision computes in float16: Keras' own layers are kept.
    half = built_in_mixed_precision(lambda: recipe.build_network(preprocessing, options, 3))
    assert convert(half) is None
    return converted


def built_in_mixed_precision(build):
    """What `build()` returns when built under Keras' `mixed_float16` policy."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
