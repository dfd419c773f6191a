"""The lstm's own behaviour: vocabulary, reproducibility, scoring samples, the fused export.

Padding and empty texts are checked for every text model in `test_every_model.py`."""

import pandas as pd
import pytest

import keras_bigmodel as kb
from keras_bigmodel.runs import open_run
from tests.tiny_data import lstm_data

TINY = {"epochs": 2, "batch_size": 8, "quiet": True}


def test_vocabulary_keeps_frequent_training_words_only(tmp_path):
    data, options = lstm_data(tmp_path)
    options = {**options, "min_frequency": 3, "max_tokens": 12}
    run_dir = kb.train("lstm", data=data, out=tmp_path / "run", **TINY, **options).run_dir
    model = open_run(run_dir).load_model()
    vocabulary = model.get_layer("vectorizer").get_vocabulary()
    assert len(vocabulary) == 12 and vocabulary[:2] == ["", "[UNK]"]
    texts = " ".join(pd.read_csv(data)["text"]).lower().split()
    assert all(texts.count(word) >= 3 for word in vocabulary[2:] if word in texts)


def test_word_counts_give_the_vocabulary_keras_adapt_gives():
    """One pass of counting makes `TextVectorization.adapt`'s vocabulary, ties and all, and
    counts each word as the vectorizer splits it."""
    import keras
    import numpy as np

    from keras_bigmodel.layers import standardize_text
    from keras_bigmodel.models.text_classifier import word_counts

    texts = np.array(
        ["Café au lait, café!", "b a c b", "ÜBER über Über", "", "[UNK] unk £5 $10", "c a"],
        dtype=object,
    )
    probe = keras.layers.TextVectorization(standardize=standardize_text)
    probe.adapt(texts)
    words, counts = word_counts(texts)
    assert words == probe.get_vocabulary()[2:]
    ids = np.asarray(probe(texts))
    expected = np.bincount(ids.ravel(), minlength=probe.vocabulary_size())[2:]
    np.testing.assert_array_equal(counts, expected)
    # "[UNK]" in a text is the word "unk"; letters outside ASCII split words.
    found = dict(zip(words, counts, strict=True))
    assert (found["unk"], found["ber"], found["caf"]) == (2, 3, 2)


def test_same_seed_same_model(tmp_path):
    data, options = lstm_data(tmp_path)
    first = kb.train("lstm", data=data, out=tmp_path / "a", **TINY, **options)
    second = kb.train("lstm", data=data, out=tmp_path / "b", **TINY, **options)
    a = pd.read_csv(first.run_dir / "history.csv")
    b = pd.read_csv(second.run_dir / "history.csv")
    pd.testing.assert_frame_equal(a, b)
    third = kb.train("lstm", data=data, out=tmp_path / "c", seed=7, **TINY, **options)
    assert not pd.read_csv(third.run_dir / "history.csv").equals(a)
    # Batches of similar lengths (the default) are other batches than the permutation's.
    fourth = kb.train(
        "lstm", data=data, out=tmp_path / "d", bucket_by_length=False, **TINY, **options
    )
    assert not pd.read_csv(fourth.run_dir / "history.csv").equals(a)


def test_metrics_of_a_large_split_are_computed_on_a_seeded_sample(tmp_path, monkeypatch):
    import json

    from keras_bigmodel.data import reader

    monkeypatch.setattr(reader, "METRIC_ROWS", 30)
    data, options = lstm_data(tmp_path)
    result = kb.train("lstm", data=data, out=tmp_path / "run", **TINY, **options)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    # 60 rows: 54 to train on, of which 30 are scored; the 6 validation rows all are.
    assert metrics["train"]["num_examples"] == 30
    assert metrics["validation"]["num_examples"] == 6


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional", "forward"])
@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("ngrams", [2, 0], ids=["ngrams", "network-alone"])
def test_the_exports_fused_lstm_computes_what_the_network_computes(bidirectional, pooling, ngrams):
    from keras_bigmodel.inference import FusedLSTMClassifier, fused_lstm_classifier
    from keras_bigmodel.models import get_recipe
    from tests.inference_checks import check_serving_graph

    recipe = get_recipe("lstm")
    options = recipe.options_class(
        bidirectional=bidirectional, pooling=pooling, units=6, ngrams=ngrams, ngram_buckets=16
    )
    fused = check_serving_graph(recipe, options, fused_lstm_classifier, 5, atol=1e-6)
    assert isinstance(fused, FusedLSTMClassifier) and fused.pooling == pooling


def test_export_serves_the_lstm_through_fused_kernels(tmp_path):
    import tensorflow as tf

    data, options = lstm_data(tmp_path)
    run_dir = kb.train("lstm", data=data, out=tmp_path / "run", **TINY, **options).run_dir
    target = kb.export(run_dir, tmp_path / "export")
    graph = tf.saved_model.load(str(target)).signatures["serving_default"].graph.as_graph_def()
    ops = {node.op for f in graph.library.function for node in f.node_def}
    assert "BlockLSTMV2" in ops and not ops & {"While", "StatelessWhile"}
