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


def test_mixed_precision_trains_the_lstm_through_its_own_layer_and_optimizer(tmp_path):
    """Under `--mixed-precision` (bfloat16 on a CPU) the unmasked LSTM and the fused Adam
    train: the loss falls, and the saved network computes in bfloat16 with `FusedAdam`."""
    import numpy as np

    data, options = lstm_data(tmp_path)
    result = kb.train(
        "lstm", data=data, out=tmp_path / "run", mixed_precision=True, **TINY, **options
    )
    history = pd.read_csv(result.run_dir / "history.csv")
    assert np.isfinite(history["loss"]).all() and history["loss"].iloc[-1] < history["loss"].iloc[0]
    run = open_run(result.run_dir)
    network = run.load_model().get_layer("lstm_classifier")
    assert network.get_layer("bidirectional").forward_layer.compute_dtype == "bfloat16"
    assert type(network.optimizer).__name__ == "FusedAdam"


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


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
def test_the_lstm_trains_without_a_mask_on_what_keras_masked_lstm_computes(bidirectional):
    """Training without masking each step gives the words' outputs and the gradients of
    Keras' masked LSTM, read in either direction over texts padded at the end."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_bigmodel.layers import EndPaddedLSTM

    rng = np.random.default_rng(0)
    lengths = [5, 1, 3, 7, 2]
    ids = np.zeros((len(lengths), 7), "int64")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 20, length)
    words = ids > 0

    def run(lstm, training):
        keras.utils.set_random_seed(1)
        token_ids = keras.Input((None,), dtype="int64")
        recurrent = lstm(4, return_sequences=True)
        if bidirectional:
            recurrent = keras.layers.Bidirectional(recurrent)
        outputs = recurrent(keras.layers.Embedding(20, 6, mask_zero=True)(token_ids))
        network = keras.Model(token_ids, outputs)
        with tf.GradientTape() as tape:
            every = network(ids, training=training)
            # A masked mean, as the lstm classifier pools; weights so each output counts.
            pooled = keras.layers.GlobalAveragePooling1D()(every, mask=tf.constant(words))
            loss = tf.reduce_sum(pooled * np.arange(1, pooled.shape[1] + 1))
        gradients = tape.gradient(loss, network.trainable_variables)
        return every.numpy(), [tf.convert_to_tensor(g).numpy() for g in gradients]

    expected, expected_gradients = run(keras.layers.LSTM, training=True)
    got, got_gradients = run(EndPaddedLSTM, training=True)
    np.testing.assert_allclose(got[words], expected[words], atol=1e-6)
    for found, wanted in zip(got_gradients, expected_gradients, strict=True):
        np.testing.assert_allclose(found, wanted, atol=1e-5)
    # The unmasked loop ran: it reads the padding too, where Keras' holds its state.
    assert np.abs(got[~words] - expected[~words]).max(axis=-1).min() > 1e-6
    # Inference is Keras' own.
    np.testing.assert_array_equal(
        run(EndPaddedLSTM, training=False)[0], run(keras.layers.LSTM, training=False)[0]
    )
