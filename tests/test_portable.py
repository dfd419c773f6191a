"""TFLite and ONNX: the reference tokenizer and the in-model resize compute what the
end-to-end models compute, and every model's portable file, read back by the format's own
runtime from inputs made by those references, gives model.keras' outputs."""

import importlib.util
import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_bigmodel as kb
from keras_bigmodel.data.examples import Examples
from keras_bigmodel.errors import UserError
from keras_bigmodel.evaluation import model_outputs
from keras_bigmodel.export_tools import Tokenizer
from keras_bigmodel.inspection import inspect_path
from keras_bigmodel.layers import decode_and_resize, standardize_text
from keras_bigmodel.models.text_classifier import clip_token_ids
from keras_bigmodel.portable import ResizePixels
from keras_bigmodel.runs import open_run
from keras_bigmodel.tflite_export import outputs as tflite_outputs
from tests.tiny_data import FOR_MODEL

HAVE_ONNX = all(importlib.util.find_spec(p) for p in ("tf2onnx", "onnx", "onnxruntime"))
NEEDS_ONNX = pytest.mark.skipif(
    not HAVE_ONNX, reason="the onnx extra is not installed: pip install 'keras-bigmodel[onnx]'"
)

TEXTS = [
    "FREE>Ringtone!Reply NOW to 8007 or call 09061701461 for £1.50/msg",
    "Ok lar... Joking wif u oni...",
    "",
    "!!! ???",
    "CAFÉ déjà vu, naïve ÜBER straße",
    "it's 2 late: won't $5 €10 be_ok",
    "tabs\tand\nnewlines  and   spaces",
    " ".join(["word"] * 30),
    "ÉCOLE école Ecole",
]


def test_tokenizer_gives_the_model_vectorizers_ids():
    """The plain-Python tokenizer against `standardize_text`, `TextVectorization` and
    `clip_token_ids` on texts with capitals (ASCII and not), long numbers, currency,
    apostrophes, underscores, whitespace of every kind, nothing, and more than max_length."""
    words = ["free", "ringtone", "0number", "£", "call", "ok", "it's", "$", "€", "be_ok", "word"]
    words += ["caf", "d", "j", "vu", "na", "ve", "ber", "stra", "e", "cole", "and", "tabs"]
    vectorizer = keras.layers.TextVectorization(
        standardize=standardize_text, output_mode="int", vocabulary=words
    )
    max_length = 12
    ids = np.asarray(clip_token_ids(vectorizer(np.array(TEXTS, dtype=object)), max_length))
    expected = [row[: np.count_nonzero(row)].tolist() for row in ids]
    tokenizer = Tokenizer(vectorizer.get_vocabulary(), max_length)
    assert tokenizer.tokenize(TEXTS) == expected
    assert expected[3] == [1] and len(expected[7]) == max_length  # checks that can fail
    padded = tokenizer.pad(tokenizer.tokenize(TEXTS[:2]))
    assert padded.dtype == np.int32 and padded[1, len(expected[1]) :].tolist() == [0] * (
        padded.shape[1] - len(expected[1])
    )


@pytest.mark.parametrize("size", [(8, 8), (32, 32), (100, 70), (33, 31), (5, 200)])
def test_resize_pixels_computes_what_decoding_computes(size):
    """The matrix resize of the TFLite and ONNX cnn against the end-to-end model's
    antialiased bilinear resize, growing and shrinking."""
    pixels = np.random.default_rng(0).integers(0, 256, (1, *size, 3)).astype(np.uint8)
    content = tf.io.encode_png(pixels[0])
    expected = decode_and_resize(content, 3, 32, 32).numpy()
    got = ResizePixels(32, 32)(pixels).numpy()[0]
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_cnn_exports_to_tflite_quantized_and_onnx(tmp_path):
    """The cnn as float TFLite, int8 TFLite and ONNX, fed decoded pixels; a quantized file
    that disagrees too much is refused with nothing written."""
    data, options = FOR_MODEL["cnn"](tmp_path)
    run_dir = kb.train(
        "cnn", data=data, out=tmp_path / "run", epochs=2, quiet=True, **options
    ).run_dir
    run = open_run(run_dir)
    model = run.load_model()
    examples = run.read_examples(data, with_targets=False)
    expected = model_outputs(model, examples)
    pixels = [
        {"pixels": tf.io.decode_png(content, channels=1).numpy()[None]}
        for content in examples.inputs["image_bytes"]
    ]
    out = tmp_path / "export"
    target = kb.export(run_dir, out, format="tflite")
    assert sorted(p.name for p in target.iterdir()) == [
        "export.json",
        "labels.json",
        "model.tflite",
        "preprocessing.json",
    ]
    got = tflite_outputs(target / "model.tflite", pixels)["probabilities"]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    settings = json.loads((target / "preprocessing.json").read_text())
    assert (settings["height"], settings["width"], settings["channels"]) == (8, 8, 1)

    quantized = kb.export(run_dir, out, format="tflite", quantize="int8")
    record = json.loads((quantized / "export.json").read_text())
    # A network this tiny is no smaller in 8 bits; the digits cnn's figure is in the README.
    assert record["quantize"] == "int8"
    assert record["size_ratio"] == record["bytes"] / record["float_bytes"]
    got = tflite_outputs(quantized / "model.tflite", pixels)["probabilities"]
    assert np.mean(got.argmax(axis=1) == expected.argmax(axis=1)) >= 0.9
    described = inspect_path(quantized / "model.tflite")
    assert described["inputs"] == {"pixels": {"dtype": "uint8", "shape": [-1, -1, -1, 1]}}
    assert "int8" in described["tensor_types"]
    assert inspect_path(quantized)["agreement"] == record["agreement"]

    import keras_bigmodel.exporting as exporting

    before = sorted(p.name for p in out.iterdir())
    exporting.MIN_LABEL_AGREEMENT, kept = 1.01, exporting.MIN_LABEL_AGREEMENT
    try:
        with pytest.raises(UserError, match="labels .* sample rows differently"):
            kb.export(run_dir, out, format="tflite", quantize="dynamic")
    finally:
        exporting.MIN_LABEL_AGREEMENT = kept
    assert sorted(p.name for p in out.iterdir()) == before

    if HAVE_ONNX:
        from keras_bigmodel.onnx_export import outputs as onnx_outputs

        target = kb.export(run_dir, out, format="onnx")
        got = onnx_outputs(target / "model.onnx", pixels)["probabilities"]
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert inspect_path(target)["inputs"]["pixels"]["dtype"] == "uint8"


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_text_models_export_to_tflite_taking_token_ids(tmp_path, name):
    """The file takes the reference tokenizer's ids, one text per call for the lstm, and
    gives model.keras' probabilities; ONNX and (for the lstm) int8 are refused plainly."""
    data, options = FOR_MODEL[name](tmp_path)
    run_dir = kb.train(
        name, data=data, out=tmp_path / "run", epochs=1, quiet=True, **options
    ).run_dir
    run = open_run(run_dir)
    model = run.load_model()
    texts = np.array(TEXTS, dtype=object)
    frame = pd.DataFrame({"text": texts})
    expected = model_outputs(model, Examples({"text": texts}, None, frame, "texts", []))
    target = kb.export(run_dir, tmp_path / "export", format="tflite")
    tokenizer = Tokenizer.from_folder(target)
    feeds = [{"token_ids": tokenizer.pad([ids])} for ids in tokenizer.tokenize(TEXTS)]
    got = tflite_outputs(target / "model.tflite", feeds)["probabilities"]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert json.loads((target / "labels.json").read_text()) == run.class_names()
    with pytest.raises(UserError, match="saved_model .* tflite"):
        kb.export(run_dir, tmp_path / "export", format="onnx")
    if name == "lstm":
        with pytest.raises(UserError, match="--quantize int8: .* dynamic"):
            kb.export(run_dir, tmp_path / "export", format="tflite", quantize="int8")
    else:
        batch = tokenizer.pad(tokenizer.tokenize(TEXTS))
        got = tflite_outputs(target / "model.tflite", [{"token_ids": batch}])["probabilities"]
        np.testing.assert_allclose(got, expected, atol=1e-4)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["1"]


def test_linear_exports_to_tflite_and_numeric_onnx(tmp_path):
    """TFLite takes the raw columns, categories included; ONNX takes numeric columns named
    after them, and a run with categories is refused naming the formats that work."""
    data, options = FOR_MODEL["linear"](tmp_path)
    run_dir = kb.train("linear", data=data, out=tmp_path / "run", quiet=True, **options).run_dir
    run = open_run(run_dir)
    examples = run.read_examples(data, with_targets=False)
    expected = model_outputs(run.load_model(), examples).reshape(-1)
    target = kb.export(run_dir, tmp_path / "export", format="tflite")
    rows = [
        {name: values[i : i + 1] for name, values in examples.inputs.items()}
        for i in range(len(examples))
    ]
    got = tflite_outputs(target / "model.tflite", rows)["prediction"]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not (target / "preprocessing.json").exists()
    if not HAVE_ONNX:
        return
    with pytest.raises(
        UserError, match="ocean_proximity .* --format saved_model or --format tflite"
    ):
        kb.export(run_dir, tmp_path / "export", format="onnx")
    numeric = ",".join(c for c in examples.inputs if c != "ocean_proximity")
    run_dir = kb.train(
        "linear",
        data=data,
        out=tmp_path / "numeric",
        quiet=True,
        features=numeric,
        **options,
    ).run_dir
    run = open_run(run_dir)
    examples = run.read_examples(data, with_targets=False)
    expected = model_outputs(run.load_model(), examples).reshape(-1)
    target = kb.export(run_dir, tmp_path / "export", format="onnx")
    from keras_bigmodel.onnx_export import outputs as onnx_outputs

    batch = {name: np.asarray(values, np.float32) for name, values in examples.inputs.items()}
    got = onnx_outputs(target / "model.onnx", [batch])["prediction"]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert sorted(inspect_path(target)["inputs"]) == sorted(numeric.split(","))
