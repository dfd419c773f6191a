"""The image classifier: reading image folders, bad images, the same pixels in training and
in the model, and every command on tiny real digits."""

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml
from click.testing import CliRunner
from PIL import Image

from cli.main import bigmodel
from keras_bigmodel.data.image_folder import default_image_shape
from keras_bigmodel.data.order import TrainingOrder
from keras_bigmodel.errors import UserError
from keras_bigmodel.layers import DecodeImages
from keras_bigmodel.models import get_recipe
from keras_bigmodel.training import resolve_config
from tests.tiny_data import EXAMPLES, digit_folder

TINY = ["--image-size", "8", "--filters", "4", "--epochs", "1", "--batch-size", "8", "--quiet"]
CNN = get_recipe("cnn")


def run_cli(*args):
    return CliRunner().invoke(bigmodel, [str(a) for a in args], catch_exceptions=False)


def read(data, with_targets=True, **options):
    return CNN.data_reader.read(data, CNN.options_class(**options), with_targets=with_targets)


def training_data(data, **flags):
    """The image reader's training data, validated on the same folder, in file order."""
    resolved = resolve_config("cnn", data=data, val_data=data, **flags)
    return CNN.data_reader.open_training(resolved.train, resolved.options)


def write_image(path, size=(8, 8), mode="L", seed=0):
    """Writes random pixels as an image whose format follows the file extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = size[::-1] + (() if mode == "L" else (3,))
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny cnn run on 3 digits x 10 images, trained once through the CLI."""
    folder = tmp_path_factory.mktemp("cnn")
    data = digit_folder(folder)
    validation = digit_folder(folder / "val", per_digit=4)
    run = folder / "run"
    # Flips only to cover their layer's save and reload: digits do not want them.
    result = run_cli(
        "train",
        "cnn",
        "--data",
        data,
        "--val-data",
        validation,
        "--out",
        run,
        "--flip",
        "both",
        *TINY,
    )
    assert result.exit_code == 0, result.output
    return folder, data, run


def test_reader_keeps_bytes_paths_and_folder_classes(tmp_path):
    data = digit_folder(tmp_path, per_digit=3)
    (data / "0" / "notes.txt").write_text("not an image")
    (data / "1" / ".DS_Store").write_bytes(b"\0\1")
    examples = read(data)
    assert len(examples) == 9 and examples.target_name == "folder"
    assert list(examples.frame.columns) == ["path", "label"]
    assert examples.targets.tolist() == ["0"] * 3 + ["1"] * 3 + ["2"] * 3
    first = Path(examples.frame.path[0])
    assert first.parent == data / "0" and examples.inputs["image_bytes"][0] == first.read_bytes()
    assert examples.inputs["image_bytes"].dtype == object

    # Without targets, a folder of class sub-folders keeps its labels as a column, a flat
    # folder (new images to predict) or a single file has paths only.
    unlabelled = read(data, with_targets=False)
    assert unlabelled.targets is None and "label" in unlabelled.frame
    flat = tmp_path / "flat"
    shutil.copytree(data / "2", flat)
    assert list(read(flat, with_targets=False).frame.columns) == ["path"]
    assert len(read(flat / next(flat.iterdir()).name, with_targets=False)) == 1


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([(28, 28)] * 3 + [(8, 8)], (28, 28)),  # MNIST's digits keep their size
        ([(8, 8), (8, 8), (9, 7)], (32, 32)),  # tiny digits are scaled up to 32
        ([(27, 30)], (32, 36)),  # a shorter side under 28 becomes 32, the shape kept
        ([(10, 20)], (32, 64)),
        ([(40, 30)], (40, 30)),
        ([(480, 640)], (96, 128)),  # photos shrink so the longer side is 128
        ([(4, 200)], (3, 128)),  # the longer side's limit comes first
    ],
)
def test_the_default_image_size_is_the_median_within_the_limits(sizes, expected):
    assert default_image_shape(sizes) == expected


def test_every_format_gives_the_same_pixels_in_training_and_in_the_model(tmp_path):
    data = tmp_path / "shapes"
    write_image(data / "a" / "gray.png", (8, 8), "L", seed=1)
    write_image(data / "a" / "photo.jpg", (12, 10), "RGB", seed=2)
    write_image(data / "b" / "anim.gif", (8, 8), "L", seed=3)
    write_image(data / "b" / "scan.bmp", (6, 9), "RGB", seed=4)
    write_image(data / "b" / "print.jpeg", (8, 8), "CMYK", seed=5)
    examples = read(data)
    layout = training_data(data).layout
    # One colour image makes every image colour; the default size is the median size
    # (8 x 8), scaled up to 32 pixels a side.
    assert (layout.channels, layout.height, layout.width) == (3, 32, 32)
    # Every format in either number of channels, even those TensorFlow's decoders will not
    # convert themselves (a GIF, a BMP or a CMYK JPEG as grayscale); decoded once into
    # memory or batch by batch from the files.
    for channels, stream_above_mb in ((3, 256), (1, 256), (3, 0)):
        found = training_data(data, channels=channels, stream_above_mb=stream_above_mb)
        assert found.cached == (stream_above_mb > 0)
        _, validation = found.datasets(TrainingOrder(0), 8)
        (batch, labels), *rest = list(validation)
        assert not rest and labels.numpy().tolist() == [0, 0, 1, 1, 1]
        network_batch, _ = next(iter(CNN.network_dataset(validation, found.layout, None)))
        decoded = DecodeImages(32, 32, channels)(tf.constant(list(examples.inputs["image_bytes"])))
        assert decoded.shape == (5, 32, 32, channels)
        np.testing.assert_array_equal(batch["pixels"].numpy(), decoded.numpy())
        np.testing.assert_array_equal(network_batch.numpy(), decoded.numpy())

    assert training_data(digit_folder(tmp_path, per_digit=2)).layout.channels == 1


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "no such folder"),
        ("file", "is a file"),
        ("flat", "images but no class sub-folders"),
        ("empty_class", "no PNG, JPEG, GIF or BMP images in this class folder"),
        ("corrupt", "2 file(s) do not decode"),
    ],
)
def test_malformed_folders_are_named_in_the_error(tmp_path, layout, message):
    data = digit_folder(tmp_path, per_digit=2)
    named = data
    if layout == "missing":
        data = named = tmp_path / "nowhere"
    elif layout == "file":
        data = named = next((data / "0").iterdir())
    elif layout == "flat":
        data = named = data / "0"
    elif layout == "empty_class":
        named = data / "7"
        named.mkdir()
    elif layout == "corrupt":
        named = data / "1" / "broken.png"
        named.write_bytes(b"not a png")
        whole = next((data / "2").iterdir()).read_bytes()
        (data / "2" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError) as error:
        read(data)
    assert message in str(error.value) and str(named) in str(error.value)
    if layout == "corrupt":
        assert "truncated.png" in str(error.value) and "--skip-unreadable" in str(error.value)


def test_skip_unreadable_reads_the_rest_and_warns(tmp_path, caplog):
    data = digit_folder(tmp_path, per_digit=2)
    (data / "1" / "broken.png").write_bytes(b"not a png")
    logger = logging.getLogger("keras_bigmodel")
    logger.addHandler(caplog.handler)
    try:
        examples = read(data, skip_unreadable=True)
    finally:
        logger.removeHandler(caplog.handler)
    assert len(examples) == 6 and not any("broken" in p for p in examples.frame.path)
    assert "Skipping 1 file(s)" in caplog.text and "broken.png" in caplog.text


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--image-size", "8by8"], "--image-size must be N (square) or HxW"),
        (["--channels", "2"], "--channels must be 1 or 3"),
        (["--filters", "32,x"], "--filters must be a comma-separated list of integers"),
    ],
)
def test_bad_options_exit_2_before_writing(tmp_path, flags, message):
    data = digit_folder(tmp_path, per_digit=2)
    result = run_cli("train", "cnn", "--data", data, "--out", tmp_path / "run", *flags)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_one_class_and_undecodable_images_exit_2(tmp_path):
    data = digit_folder(tmp_path, digits=(5,), per_digit=3)
    result = run_cli("train", "cnn", "--data", data, "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 2 and "needs at least two" in result.output
    (data / "5" / "x.jpg").write_bytes(b"\xff\xd8 broken")
    result = run_cli("train", "cnn", "--data", data, "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 2 and "x.jpg" in result.output
    assert not (tmp_path / "run").exists()


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from cli.main import bigmodel\n"
        "try:\n    bigmodel(['train', 'cnn', '--help'])\nexcept SystemExit:\n    pass\n"
        "sys.exit(3 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert b"--augment / --no-augment" in done.stdout and b"[default: 16,32,64]" in done.stdout


def test_run_directory_and_safe_mode_reload(trained):
    _, data, run = trained
    info = yaml.safe_load((run / "run.yaml").read_text())
    assert info["status"] == "finished" and info["config"]["filters"] == [4]
    assert info["data"]["rows"] == 30 and len(info["data"]["validation"]["sha256"]) == 64
    assert json.loads((run / "labels.json").read_text()) == ["0", "1", "2"]
    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    assert model.input["image_bytes"].dtype == "string"
    assert model.get_layer("decode_images").get_config()["height"] == 8


def test_eval_json(trained):
    _, data, run = trained
    result = run_cli("eval", run, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["num_examples"] == 30 and len(metrics["confusion_matrix"]) == 3
    assert set(metrics["per_class"]) == {"0", "1", "2"}
    assert (run / "eval" / "digits" / "confusion_matrix.png").is_file()


def test_eval_on_a_class_the_model_does_not_know(trained, tmp_path):
    _, _, run = trained
    data = digit_folder(tmp_path, digits=(0, 9), per_digit=2)
    result = run_cli("eval", run, "--data", data)
    assert result.exit_code == 2 and "'9'" in result.output


def test_predict_keeps_paths_and_adds_probabilities(trained, tmp_path):
    _, data, run = trained
    flat = tmp_path / "new"
    shutil.copytree(data / "1", flat)
    (flat / "broken.png").write_bytes(b"oops")
    (flat / "readme.txt").write_text("ignored: not an image")
    result = run_cli("predict", run, "--data", flat, "--out", tmp_path / "p.csv")
    assert result.exit_code == 2 and "broken.png" in result.output
    result = run_cli(
        "predict", run, "--data", flat, "--skip-unreadable", "--out", tmp_path / "p.csv"
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "p.csv", dtype={"prediction": str})
    assert list(table.columns) == ["path", "prediction", "prob_0", "prob_1", "prob_2"]
    assert len(table) == 10 and all(Path(p).parent == flat for p in table.path)
    assert set(table.prediction) <= {"0", "1", "2"}
    np.testing.assert_allclose(table.filter(like="prob_").sum(axis=1), 1.0, atol=1e-5)


def test_export_takes_image_bytes_and_tflite_takes_pixels(trained):
    folder, data, run = trained
    result = run_cli("export", run, "--out", folder / "export")
    assert result.exit_code == 0, result.output
    signature = tf.saved_model.load(str(folder / "export" / "1")).signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert list(inputs) == ["image_bytes"] and inputs["image_bytes"].dtype == tf.string
    assert inputs["image_bytes"].shape.as_list() == [None]
    image = sorted((data / "2").iterdir())[0].read_bytes()
    outputs = signature(image_bytes=tf.constant([image, image]))
    assert outputs["probabilities"].shape == (2, 3) and outputs["label"].dtype == tf.string

    # TFLite cannot decode images: its file takes decoded pixels of any size.
    result = run_cli("export", run, "--out", folder / "tflite", "--format", "tflite")
    assert result.exit_code == 0, result.output
    record = json.loads((folder / "tflite" / "1" / "export.json").read_text())
    assert record["inputs"] == {"pixels": {"dtype": "uint8", "shape": [-1, -1, -1, 1]}}


def test_inspect_image_folder(tmp_path):
    data = digit_folder(tmp_path, per_digit=3)
    (data / "2" / "broken.png").write_bytes(b"oops")
    result = run_cli("inspect", data, "--json")
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["kind"] == "image_folder" and described["images"] == 10
    assert described["classes"] == {"0": 3, "1": 3, "2": 4}
    assert described["sizes"] == {"8x8": 9} and described["modes"] == {"L": 9}
    assert described["unreadable"] == 1 and described["unreadable_files"][0].endswith("broken.png")


@pytest.mark.slow
def test_digits_held_out_fifth_with_default_settings(tmp_path):
    """Default settings on scikit-learn's digits: a held-out fifth, through the command line,
    >= 98.5% accurate (an RBF SVM gets 98.9%) and trained within 3 minutes on 2 CPU cores."""
    subprocess.run(
        [sys.executable, str(EXAMPLES.parent / "make_digits.py"), tmp_path, "--test", "0.2"],
        check=True,
    )
    command = Path(sys.executable).parent / "bigmodel"
    started = time.perf_counter()
    subprocess.run(
        [command, "train", "cnn", "--data", tmp_path / "train", "--out", tmp_path / "run"],
        check=True,
    )
    seconds = time.perf_counter() - started
    done = subprocess.run(
        [command, "eval", tmp_path / "run", "--data", tmp_path / "test", "--json"],
        check=True,
        capture_output=True,
    )
    metrics = json.loads(done.stdout)
    print(
        f"digits held-out accuracy {metrics['accuracy']:.4f} on {metrics['num_examples']} "
        f"images, trained in {seconds:.0f} s"
    )
    assert metrics["num_examples"] == 359
    assert metrics["accuracy"] >= 0.985
    assert seconds < 180


def test_an_image_already_at_the_size_keeps_its_pixels(tmp_path):
    write_image(tmp_path / "gray.png", (8, 8), "L", seed=1)
    content = (tmp_path / "gray.png").read_bytes()
    decoded = DecodeImages(8, 8, 1)(tf.constant([content])).numpy()
    stored = np.asarray(Image.open(tmp_path / "gray.png"), dtype=np.float32)
    np.testing.assert_array_equal(decoded[0, :, :, 0], stored)


@pytest.mark.parametrize(
    "size, enlarged",
    [((8, 8), True), ((28, 28), True), ((7, 32), True), ((1, 3), True), ((40, 20), False)],
)
def test_an_enlarged_image_gets_the_pixels_of_the_antialiased_resize(size, enlarged):
    """An image smaller than the size on both axes is resized without antialiasing, which
    then computes the same pixels; one larger on any axis keeps the antialiased resize."""
    from keras_bigmodel.layers import decode_and_resize

    pixels = np.random.default_rng(0).integers(0, 256, (*size, 1)).astype(np.uint8)
    content = tf.io.encode_png(pixels)
    antialiased = tf.image.resize(pixels, [32, 32], method="bilinear", antialias=True).numpy()
    plain = tf.image.resize(pixels, [32, 32], method="bilinear").numpy()
    decoded = decode_and_resize(content, 1, 32, 32).numpy()
    np.testing.assert_allclose(decoded, antialiased, atol=1e-3)
    # Which resize ran: enlarging, the two differ by rounding (28x28: up to 7e-4);
    # shrinking, by whole shades.
    np.testing.assert_array_equal(decoded, plain if enlarged else antialiased)
    if not enlarged:
        assert np.abs(plain - antialiased).max() > 1


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_the_exports_pooling_takes_the_maximum_of_each_square(padding):
    """The folded cnn's pooling as reshapes and reductions gives `MaxPooling2D`'s values
    exactly, on even and odd sizes: an odd last row or column is left out as `valid`
    pooling leaves it, and pooled alone as `same` pooling pools it."""
    from keras_bigmodel.inference import _max_of_pairs

    pooling = keras.layers.MaxPooling2D(2, padding=padding)
    rng = np.random.default_rng(0)
    for shape in [(2, 8, 6, 3), (1, 9, 7, 5), (3, 2, 5, 1), (1, 7, 7, 2), (2, 3, 3, 4)]:
        # Negative values too: the padding `same` pooling adds must never be the maximum.
        x = tf.constant(rng.normal(size=shape).astype("float32") - 1)
        expected = pooling(x).numpy()
        assert expected.shape[1:3] == (
            tuple(-(-n // 2) for n in shape[1:3])
            if padding == "same"
            else tuple(n // 2 for n in shape[1:3])
        )
        np.testing.assert_array_equal(_max_of_pairs(x, padding).numpy(), expected)


@pytest.mark.parametrize("size", [(9, 7), (8, 6)])
@pytest.mark.parametrize("augment", [True, False], ids=["augmented", "plain"])
def test_the_exports_folded_cnn_computes_what_the_network_computes(augment, size):
    """With each batch normalization folded into its convolution, the serving graph gives
    the network's probabilities, on random weights and statistics, on an odd image size
    (a last row and column that "same" pooling pools alone) and an even one; networks it
    would not compute alike keep Keras' layers."""
    from keras_bigmodel.data.image_folder import ImageLayout
    from keras_bigmodel.inference import fast_cnn_classifier
    from tests.inference_checks import built_in_mixed_precision

    options = CNN.options_class(filters=(4, 6), augment=augment)
    layout = ImageLayout(*size, 3)
    network = CNN.build_network(layout, options, 3)
    rng = np.random.default_rng(0)
    network.set_weights([rng.normal(0, 0.7, w.shape) for w in network.get_weights()])
    for layer in network.layers:
        # Variances near the normalization's epsilon, which must then be in the fold.
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(rng.uniform(1e-3, 1e-2, layer.moving_variance.shape))
    pixels = rng.uniform(0, 255, (4, *size, 3)).astype("float32")
    # Scores small enough that the probabilities are not all 0 and 1.
    scores = network.get_layer("probabilities")
    features = keras.Model(network.input, scores.input)(pixels, training=False)
    scores.kernel.assign(scores.kernel / np.abs(features.numpy()).max())
    fast = fast_cnn_classifier(network)
    assert fast is not None
    expected = network(pixels, training=False).numpy()
    assert 0.01 < expected.max(axis=1).min() < 0.99
    np.testing.assert_allclose(fast(pixels).numpy(), expected, atol=1e-5)
    assert not any(isinstance(w, keras.layers.BatchNormalization) for _, w, _ in fast.steps)

    half = built_in_mixed_precision(lambda: CNN.build_network(layout, options, 3))
    assert fast_cnn_classifier(half) is None
    pixels_in = keras.Input((9, 7, 3))
    strided = keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False)(pixels_in)
    normalized = keras.layers.BatchNormalization()(strided)
    other = keras.Model(pixels_in, keras.layers.GlobalAveragePooling2D()(normalized))
    assert fast_cnn_classifier(other) is None
    # A normalization after pooling has no convolution to be folded into.
    convolved = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(pixels_in)
    pooled = keras.layers.MaxPooling2D(2, padding="same")(
        keras.layers.BatchNormalization()(convolved)
    )
    normalized = keras.layers.BatchNormalization()(pooled)
    other = keras.Model(pixels_in, keras.layers.GlobalAveragePooling2D()(normalized))
    assert fast_cnn_classifier(other) is None
