"""The transformer's position vectors (fixed sinusoids by default, learned on request, and
learned for every model and run made before the choice existed), and its serving graph."""

import math

import keras
import numpy as np
import pytest

from keras_bigmodel.layers import PositionEmbedding
from keras_bigmodel.training import resolve_config


def test_sinusoidal_positions_are_fixed_sines_and_cosines():
    layer = PositionEmbedding(6, "sinusoidal")
    words = np.random.default_rng(0).normal(size=(2, 4, 8)).astype("float32")
    out = np.asarray(layer(words))
    # Position p, dimension 2i: sin(p / 10000^(2i/8)); dimension 2i+1: its cosine.
    table = np.array(
        [
            [(math.cos if d % 2 else math.sin)(p / 10000 ** (2 * (d // 2) / 8)) for d in range(8)]
            for p in range(4)
        ]
    )
    np.testing.assert_allclose(out - words, np.broadcast_to(table, (2, 4, 8)), atol=1e-6)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1


def test_learned_positions_are_trained_and_saved_models_without_kind_have_them():
    learned = PositionEmbedding(6, "learned")
    learned.build((None, None, 8))
    assert [w.name for w in learned.trainable_weights] == ["positions"]
    # The config of a model.keras written before `kind` existed.
    old = PositionEmbedding.from_config({"name": "position_embedding", "max_length": 6})
    assert old.kind == "learned"
    with pytest.raises(ValueError, match="kind must be learned or sinusoidal"):
        PositionEmbedding(6, "rotary")


def test_the_default_is_sinusoidal_but_a_run_recorded_without_the_option_resumes_learned():
    assert resolve_config("transformer", data="x.tsv").options.positions == "sinusoidal"
    assert (
        resolve_config("transformer", data="x.tsv", positions="learned").options.positions
        == "learned"
    )
    recorded = ("run.yaml", {"config": {"data": "x.tsv", "embedding_dim": 64}})
    assert resolve_config("transformer", recorded=recorded).options.positions == "learned"


def test_a_transformer_with_fixed_positions_round_trips_through_model_keras(tmp_path):
    inputs = keras.Input(shape=(None, 8))
    model = keras.Model(inputs, PositionEmbedding(10, "sinusoidal")(inputs))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    words = np.zeros((1, 10, 8), dtype="float32")
    np.testing.assert_allclose(reloaded(words), model(words))
    assert reloaded.layers[-1].kind == "sinusoidal"


@pytest.mark.parametrize("elementwise", [True, False], ids=["elementwise", "matrices"])
@pytest.mark.parametrize("ngrams", [2, 0], ids=["ngrams", "network-alone"])
def test_the_exports_transformer_computes_what_the_network_computes(
    elementwise, ngrams, monkeypatch
):
    from types import SimpleNamespace

    from keras_bigmodel import inference
    from keras_bigmodel.inference import FastTransformerClassifier, fast_transformer_classifier
    from keras_bigmodel.models import get_recipe

    # Both ways of attending: elementwise products for small batches, matrices for large.
    monkeypatch.setattr(inference, "ELEMENTWISE_ATTENTION", 2**40 if elementwise else 0)
    recipe = get_recipe("transformer")
    options = recipe.options_class(
        num_layers=2, num_heads=3, ff_dim=7, ngrams=ngrams, ngram_buckets=16, max_length=8
    )
    # What build_network reads of TextPreprocessing, without a vocabulary to adapt.
    preprocessing = SimpleNamespace(vocabulary_size=20, vectors=None, embedding_dim=6)
    network = recipe.build_network(preprocessing, options, 3)
    rng = np.random.default_rng(0)  # biases and normalisations too
    network.set_weights([rng.normal(0, 0.7, w.shape) for w in network.get_weights()])
    # Rows of 4, 1, 6 and 2 words, padded at the end as the vectorizer pads them.
    ids = np.array(
        [[3, 7, 1, 9, 0, 0], [5, 0, 0, 0, 0, 0], [2, 4, 6, 8, 19, 12], [11, 13] + [0] * 4]
    )
    fast = fast_transformer_classifier(network)
    assert isinstance(fast, FastTransformerClassifier) and fast.blocks == ["block1", "block2"]
    expected = network(ids, training=False).numpy()
    np.testing.assert_allclose(fast(ids).numpy(), expected, atol=1e-5)
    # A row's answer does not depend on the padding beside it.
    np.testing.assert_allclose(fast(ids[1:2, :1]).numpy(), expected[1:2], atol=1e-5)
    # Mixed precision computes in float16: Keras' own layers are kept.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = recipe.build_network(preprocessing, options, 3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert fast_transformer_classifier(half) is None


def test_the_transformers_export_has_no_einsum(tmp_path):
    import tensorflow as tf

    import keras_bigmodel as kb
    from tests.tiny_data import FOR_MODEL

    data, options = FOR_MODEL["transformer"](tmp_path)
    run = kb.train("transformer", data=data, out=tmp_path / "run", epochs=1, **options)
    target = kb.export(run.run_dir, tmp_path / "export")
    graph = tf.saved_model.load(str(target)).signatures["serving_default"].graph.as_graph_def()
    ops = {node.op for f in graph.library.function for node in f.node_def}
    assert "MatMul" in ops and "Einsum" not in ops
