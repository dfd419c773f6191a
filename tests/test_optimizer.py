"""The Adam that training uses: Keras' update, computed by TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bigmodel.layers import FusedAdam


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_updates_as_keras_adam_does(amsgrad):
    """Dense and sparse (embedding) gradients, under a learning-rate schedule, for 30
    steps: the same weights and moments as Keras' Adam, up to float rounding."""
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(4,)).astype("float32")]
    steps = []
    for _ in range(30):
        rows = rng.choice(6, size=3, replace=False)
        sparse = tf.IndexedSlices(
            tf.constant(rng.normal(size=(3, 4)).astype("float32")),
            tf.constant(rows),
            tf.constant([6, 4]),
        )
        dense = tf.constant((rng.normal(size=(4,)) * 10 ** rng.uniform(-6, 0)).astype("float32"))
        steps.append((sparse, dense))

    def train(optimizer_class):
        weights = [keras.Variable(value) for value in start]
        rate = keras.optimizers.schedules.CosineDecay(1e-2, 30)
        optimizer = optimizer_class(rate, amsgrad=amsgrad)

        @tf.function
        def step(sparse, dense):
            optimizer.apply([sparse, dense], weights)

        for sparse, dense in steps:
            step(sparse, dense)
        graph = step.get_concrete_function(*steps[0]).graph.as_graph_def()
        kinds = {node.op for node in graph.node} | {
            node.op for function in graph.library.function for node in function.node_def
        }
        return [w.numpy() for w in weights + optimizer.variables[1:]], kinds

    expected, keras_kinds = train(keras.optimizers.Adam)
    got, kinds = train(FusedAdam)
    assert len(got) == len(expected)
    for found, wanted in zip(got, expected, strict=True):
        np.testing.assert_allclose(found, wanted, rtol=1e-5, atol=1e-6)
    assert np.abs(expected[0] - start[0]).max() > 0.05  # the weights did move
    assert ("ResourceApplyAdam" in kinds) != amsgrad
    assert "ResourceApplyAdam" not in keras_kinds


def test_fused_adam_is_what_adam_training_builds_and_model_keras_names():
    from types import SimpleNamespace

    from keras_bigmodel.training import make_optimizer

    settings = SimpleNamespace(learning_rate=1e-3, lr_schedule="constant", optimizer="adam")
    optimizer = make_optimizer(settings, 10)
    assert type(optimizer) is FusedAdam
    config = keras.saving.serialize_keras_object(optimizer)
    assert config["registered_name"] == "bigmodel>FusedAdam"
    assert type(keras.saving.deserialize_keras_object(config)) is FusedAdam
