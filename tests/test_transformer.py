"""The transformer's position vectors: fixed sinusoids by default, learned on request, and
learned for every model and run made before the choice existed."""

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
