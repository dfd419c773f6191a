"""The text models' bag of n-grams (`--ngrams`): its scores, exactly; the network's end
with and without it; runs recorded before the option resume without it."""

import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from keras_bigmodel.layers import NGRAM_HASH_PRIME, BagOfNgrams
from keras_bigmodel.models import get_recipe
from keras_bigmodel.training import resolve_config

# Two texts of 3 and 1 words, padded at the end; a vocabulary of 10 ids.
IDS = np.array([[4, 7, 2, 0], [9, 0, 0, 0]])


def scores_by_hand(table, ids, ngrams, buckets, vocabulary_size, gain):
    """Each text's scores from the layer's definition: its words' rows and the hashed
    rows of its runs of 2 to `ngrams` words, summed, over the square root of their
    number, times `gain`."""
    out = []
    for row in ids:
        words = [int(i) for i in row if i > 0]
        picked = list(words)
        for n in range(2, ngrams + 1):
            for start in range(len(words) - n + 1):
                hashed = 0
                for word in words[start : start + n]:
                    hashed = (hashed * NGRAM_HASH_PRIME + word) % buckets
                picked.append(vocabulary_size + hashed)
        out.append(gain * table[picked].sum(axis=0) / math.sqrt(len(picked)))
    return np.array(out)


@pytest.mark.parametrize("ngrams", [1, 2, 3])
def test_a_texts_scores_are_its_ngrams_rows_over_the_root_of_their_number(ngrams):
    # 11 buckets: the pairs and the run of three of the first text land in different rows.
    layer = BagOfNgrams(10, 3, ngrams=ngrams, buckets=11, gain=30.0)
    layer.build(IDS.shape)
    rows = 10 + (11 if ngrams > 1 else 0)
    assert tuple(layer.table.shape) == (rows, 3)
    table = np.random.default_rng(0).normal(size=(rows, 3)).astype("float32")
    layer.table.assign(table)
    expected = scores_by_hand(table, IDS, ngrams, 11, 10, 30.0)
    np.testing.assert_allclose(np.asarray(layer(IDS)), expected, rtol=1e-5)
    # The first text holds 3 words, 2 pairs and 1 run of three: the pairs' rows are used.
    if ngrams >= 2:
        pair = 10 + (4 * NGRAM_HASH_PRIME + 7) % 11
        changed = table.copy()
        changed[pair] += 1.0
        layer.table.assign(changed)
        difference = np.asarray(layer(IDS)) - expected
        np.testing.assert_allclose(difference[0], 30.0 / math.sqrt(3 + 2 + (ngrams == 3)))
        np.testing.assert_allclose(difference[1], 0.0)
    # Padding adds nothing: the same texts padded to 6, or alone and unpadded.
    layer.table.assign(table)
    padded = np.pad(IDS, [[0, 0], [0, 2]])
    np.testing.assert_allclose(np.asarray(layer(padded)), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(layer(IDS[1:, :1])), expected[1:], rtol=1e-5)


def test_the_table_starts_at_zero_and_a_model_keras_keeps_it(tmp_path):
    ids = keras.Input(shape=(None,), dtype="int64")
    model = keras.Model(ids, BagOfNgrams(10, 2, ngrams=2, buckets=5, name="ngrams")(ids))
    np.testing.assert_array_equal(np.asarray(model(IDS)), 0.0)
    model.get_layer("ngrams").table.assign(np.arange(30, dtype="float32").reshape(15, 2))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(reloaded(IDS)), np.asarray(model(IDS)))
    assert reloaded.get_layer("ngrams").get_config()["buckets"] == 5
    with pytest.raises(ValueError, match="ngrams and buckets must be at least 1, not 0 and 5"):
        BagOfNgrams(10, 2, ngrams=0, buckets=5)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_the_networks_probabilities_are_the_softmax_of_both_scores(name):
    recipe = get_recipe(name)
    preprocessing = SimpleNamespace(vocabulary_size=10, vectors=None, embedding_dim=8)
    network = recipe.build_network(preprocessing, recipe.options_class(), 3)
    ngrams = network.get_layer("ngrams")
    assert (ngrams.ngrams, ngrams.buckets, ngrams.gain) == (2, 2**17, 30.0)
    rng = np.random.default_rng(1)
    ngrams.table.assign(rng.normal(size=ngrams.table.shape))
    # The network's own scores, from its pooled features, plus the n-grams'.
    features = keras.Model(network.input, network.get_layer("dropout").input)(IDS)
    scores = network.get_layer("network_scores")(features) + ngrams(IDS)
    np.testing.assert_allclose(
        np.asarray(network(IDS)), np.asarray(keras.ops.softmax(scores)), rtol=1e-5
    )
    alone = recipe.build_network(preprocessing, recipe.options_class(ngrams=0), 3)
    names = {layer.name for layer in alone.layers}
    assert not names & {"ngrams", "network_scores", "scores"}
    assert alone.get_layer("probabilities").activation is keras.activations.softmax


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_runs_recorded_before_the_option_resume_without_ngrams(name):
    assert resolve_config(name, data="x.tsv").options.ngrams == 2
    assert resolve_config(name, data="x.tsv", ngrams=3).options.ngrams == 3
    recorded = ("run.yaml", {"config": {"data": "x.tsv", "embedding_dim": 64}})
    assert resolve_config(name, recorded=recorded).options.ngrams == 0
