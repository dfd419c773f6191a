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
    from keras_bigmodel import inference
    from keras_bigmodel.inference import FastTransformerClassifier, fast_transformer_classifier
    from keras_bigmodel.models import get_recipe
    from tests.inference_checks import check_serving_graph

    # Both ways of attending: elementwise products for small batches, matrices for large.
    monkeypatch.setattr(inference, "ELEMENTWISE_ATTENTION", 2**40 if elementwise else 0)
    recipe = get_recipe("transformer")
    options = recipe.options_class(
        num_layers=2, num_heads=3, ff_dim=7, ngrams=ngrams, ngram_buckets=16, max_length=8
    )
    fast = check_serving_graph(recipe, options, fast_transformer_classifier, 6, atol=1e-5)
    assert isinstance(fast, FastTransformerClassifier) and fast.blocks == ["block1", "block2"]


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
