"""Every registered model passes the same checks: build, fit a few steps, save, reload in
safe mode, export, reload the export, and give the same outputs all the way through; a
text model's outputs also do not depend on the padding of the batch a text is in."""

import ast
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

import keras_bigmodel as kb
from keras_bigmodel.data.examples import Examples
from keras_bigmodel.evaluation import inference, model_outputs
from keras_bigmodel.models import get_recipe, recipe_names
from keras_bigmodel.runs import open_run
from keras_bigmodel.tflite_export import outputs as tflite_outputs
from tests.tiny_data import FOR_MODEL

ROOT = Path(__file__).resolve().parents[1]
RUN_FILES = ["run.yaml", "model.keras", "metrics.json", "history.csv", "plots/learning_curves.png"]


def test_every_registered_model_has_tiny_data():
    assert sorted(FOR_MODEL) == sorted(recipe_names())


def test_models_never_import_a_reader():
    """Recipes get what readers read from the trainer: no module of `models/` imports
    anything of `keras_bigmodel.data` but the kinds of input (their options) and the
    registry of readers, which imports no reader until the trainer asks for one."""
    for path in sorted((ROOT / "keras_bigmodel" / "models").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            allowed = ("keras_bigmodel.data.reader", "keras_bigmodel.data.kinds")
            names = [n for n in names if not n.startswith(allowed)]
            assert not any(n.startswith("keras_bigmodel.data") for n in names), (
                f"{path.name}:{node.lineno} imports {names[0]}"
            )


@pytest.mark.parametrize("streamed", [False, True], ids=["in_memory", "streamed"])
@pytest.mark.parametrize("name", sorted(FOR_MODEL))
def test_train_save_reload_export_round_trip(tmp_path, name, streamed):
    data, options = FOR_MODEL[name](tmp_path)
    # --stream-above-mb 0 streams every table from disk and decodes images batch by batch.
    result = kb.train(
        name,
        data=data,
        out=tmp_path / "run",
        epochs=2,
        batch_size=8,
        quiet=True,
        stream_above_mb=0 if streamed else 256,
        **options,
    )
    run_dir = result.run_dir
    described = yaml.safe_load((run_dir / "run.yaml").read_text())["data"]
    if "cached" in described:
        assert described["cached"] is not streamed
    else:
        assert described.get("streamed", False) is streamed
    for file in RUN_FILES:
        assert (run_dir / file).is_file(), file
    assert list((run_dir / "checkpoints").iterdir())
    assert list((run_dir / "logs").rglob("events.out.tfevents.*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"train", "validation"}

    run = open_run(run_dir)
    examples = run.read_examples(data, with_targets=False).take(np.arange(6))
    reloaded = keras.models.load_model(run_dir / "model.keras", safe_mode=True)
    # A user's own script: `import keras_bigmodel` is all it takes, before or after Keras.
    imports = (
        "import keras; import keras_bigmodel"
        if name == "cnn"
        else ("import keras_bigmodel; import keras")
    )
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{imports}; keras.models.load_model({str(run_dir / 'model.keras')!r})",
        ],
        capture_output=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr.decode()[-2000:]
    expected = model_outputs(reloaded, examples)
    assert np.all(np.isfinite(expected))
    text_model = get_recipe(name).reader == "text_table"
    if text_model:
        # run.yaml records the size the embedding was built with.
        config = yaml.safe_load((run_dir / "run.yaml").read_text())["config"]
        network = next(layer for layer in reloaded.layers if hasattr(layer, "get_layer"))
        assert config["embedding_dim"] == network.get_layer("embedding").output_dim
        check_padding_changes_nothing(lambda texts: reloaded.predict({"text": texts}, verbose=0))
        check_scoring_keeps_row_order(reloaded)

    target = kb.export(run_dir, tmp_path / "export")
    assert target == tmp_path / "export" / "1"
    for file in ("saved_model.pb", "variables", "assets"):
        assert (target / file).exists(), file
    signature = tf.saved_model.load(str(target)).signatures["serving_default"]
    outputs = signature(**{k: tf.constant(v) for k, v in examples.inputs.items()})
    class_names = run.class_names()
    if class_names:
        assert json.loads((run_dir / "labels.json").read_text()) == class_names
        np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
        labels = [label.decode() for label in outputs["label"].numpy()]
        assert labels == [class_names[i] for i in expected.argmax(axis=1)]
    else:
        np.testing.assert_allclose(
            outputs["prediction"].numpy(), expected.reshape(-1), rtol=1e-5, atol=1e-5
        )
    if text_model:
        check_padding_changes_nothing(
            lambda texts: signature(text=tf.constant(texts.tolist()))["probabilities"].numpy()
        )
    if not streamed:
        check_tflite_round_trip(run, examples, expected, tmp_path / "tflite")


def check_tflite_round_trip(run, examples, expected, out):
    """Every model exports to TFLite: the file, run by TFLite's interpreter on the inputs
    the recipe's portable model takes (token ids, pixels or columns), gives model.keras'
    outputs. tests/test_portable.py feeds it from independent references instead."""
    target = kb.export(run.path, out, format="tflite")
    portable = run.recipe.portable_model(run.load_model(), run.options())
    got = tflite_outputs(target / "model.tflite", portable.prepare(examples))
    key = "probabilities" if run.class_names() else "prediction"
    np.testing.assert_allclose(got[key].reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)
    assert json.loads((target / "export.json").read_text())["format"] == "tflite"


SHORT = "call now to claim your prize"
LONG = " ".join(["see you at the station later tonight"] * 20)


def check_padding_changes_nothing(predict):
    """A text's outputs are the same alone and in a batch padded to a far longer text: the
    padding mask reaches every layer that mixes positions (recurrence, attention, pooling).
    `predict` maps an object array of texts to their outputs."""
    alone = predict(np.array([SHORT], dtype=object))
    beside = predict(np.array([SHORT, LONG, "", "!!!"], dtype=object))
    np.testing.assert_allclose(alone[0], beside[0], atol=1e-5)
    assert np.all(np.isfinite(beside))  # empty and unknown-only texts are fine too


def check_scoring_keeps_row_order(model):
    """Scoring runs the texts shortest first, and gives the outputs back in row order; its
    function is traced once, for batches of any size."""
    texts = np.array([LONG, SHORT, "", "!!!", "call me", LONG + " now", SHORT], dtype=object)
    examples = Examples({"text": texts}, None, pd.DataFrame({"text": texts}), "texts", [])
    one_by_one = [model.predict({"text": texts[i : i + 1]}, verbose=0)[0] for i in range(7)]
    np.testing.assert_allclose(model_outputs(model, examples), one_by_one, atol=1e-5)
    # Three full batches and a shorter one (`model.predict` would trace its step for each),
    # run two at a time.
    many = np.array([f"{text} {i}" for i, text in enumerate(np.resize(texts, 900))], dtype=object)
    examples = Examples({"text": many}, None, pd.DataFrame({"text": many}), "texts", [])
    expected = model.predict({"text": many}, verbose=0)
    np.testing.assert_allclose(model_outputs(model, examples), expected, atol=1e-5)
    assert inference(model)[0].experimental_get_tracing_count() == 1


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_embedding_dropout_drops_a_texts_same_dimensions_in_every_word(name):
    """`--embedding-dropout` reaches each text model's network: while training, each text
    loses the same word-vector dimensions in all its words (rescaling the rest), and at
    inference nothing is dropped. The lstm drops half by default, the transformer none."""
    recipe = get_recipe(name)
    assert recipe.options_class().embedding_dropout == {"lstm": 0.5, "transformer": 0.0}[name]
    options = recipe.options_class(embedding_dropout=0.5, max_length=8)
    preprocessing = SimpleNamespace(vocabulary_size=20, vectors=None, embedding_dim=16)
    network = recipe.build_network(preprocessing, options, 2)
    probe = keras.Model(network.input, network.get_layer("embedding_dropout").output)
    ids = np.array([[3, 7, 1, 9, 4, 2], [5, 6, 8, 10, 11, 12]])
    vectors = network.get_layer("embedding")(ids).numpy()
    dropped = probe(ids, training=True).numpy()
    kept = dropped != 0
    # Per text, one set of dimensions for all six words; kept values scaled by 1 / 0.5.
    assert (kept == kept[:, :1, :]).all()
    assert 0 < kept[:, 0, :].sum() < kept[:, 0, :].size
    np.testing.assert_allclose(dropped[kept], 2 * vectors[kept], rtol=1e-6)
    np.testing.assert_allclose(probe(ids, training=False).numpy(), vectors)
