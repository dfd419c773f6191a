"""Exporting a run's model for serving: SavedModel (TensorFlow Serving layout) and TFLite."""

import re
from pathlib import Path

import numpy as np

from keras_bigmodel.errors import UserError
from keras_bigmodel.evaluation import model_outputs
from keras_bigmodel.runs import LABELS_FILE, atomic_path, open_run, write_json

FORMATS = ("saved_model", "tflite")
TOLERANCE = 1e-4


def export(run_dir, out, format="saved_model", version=None):
    """Exports a run's model into `out/<version>/` and checks the artifact before returning.

    Args:
        run_dir: a run directory written by `train`.
        out: the export folder; each version is a numbered sub-folder.
        format: `saved_model` (TensorFlow Serving) or `tflite`.
        version: the version number; by default one more than the newest there (1 at first).
            An existing version is never overwritten.

    Returns:
        The path of the version folder written.

    Raises:
        UserError: an unknown format, an existing version, or a model the format cannot
            express.
    """
    if format not in FORMATS:
        raise UserError(f"--format {format}: choose one of {', '.join(FORMATS)}.")
    run = open_run(run_dir)
    out = Path(out)
    version = _choose_version(out, version)
    target = out / str(version)
    model = run.load_model()
    class_names = run.class_names()
    # The training rows kept in the run directory: export needs no training data.
    sample = run.sample_examples()
    expected = model_outputs(model, sample)
    with atomic_path(target) as tmp:
        if format == "saved_model":
            write_saved_model(run.recipe.serving_model(model, run.options()), tmp, class_names)
            _check_outputs(_saved_model_outputs(tmp, sample), expected, class_names, "SavedModel")
        else:
            # TFLite converts Keras' own layers (an LSTM's loop included), not fused kernels.
            write_saved_model(model, tmp, class_names)
            saved_model = tmp.with_name("saved_model")
            tmp.rename(saved_model)
            tmp.mkdir()
            write_tflite(saved_model, tmp / "model.tflite")
            if class_names:
                write_json(tmp / LABELS_FILE, class_names)
            _check_outputs(
                _tflite_outputs(tmp / "model.tflite", sample), expected, class_names, "TFLite"
            )
    return target


def serving_function(model, class_names):
    """Returns the serving signature's function and its input specs.

    The signature takes one `[batch]` tensor per model input, named after it, and returns
    `label` and `probabilities` for a classifier, `prediction` for a regression.
    """
    import tensorflow as tf

    names = [tensor.name for tensor in model.inputs]
    specs = [tf.TensorSpec([None], tensor.dtype, name=tensor.name) for tensor in model.inputs]

    def serve(*tensors):
        outputs = model(dict(zip(names, tensors, strict=True)), training=False)
        if class_names is None:
            return {"prediction": tf.reshape(outputs, [-1])}
        label = tf.gather(tf.constant(class_names), tf.argmax(outputs, axis=1))
        return {"label": label, "probabilities": outputs}

    return serve, specs


def write_saved_model(model, path, class_names):
    """Writes a SavedModel whose `serving_default` signature takes raw, named inputs."""
    import keras

    serve, specs = serving_function(model, class_names)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=specs)
    archive.write_out(str(path), verbose=False)


def write_tflite(saved_model, path):
    """Converts a SavedModel to TFLite with TFLite's built-in operations only.

    Models whose raw-input preprocessing needs TensorFlow's own operations (string
    splitting, vocabulary lookups, image decoding) would need the Flex delegate, which
    the stock TFLite runtimes lack; for those the SavedModel is the artifact to ship.

    Raises:
        UserError: the model needs operations TFLite does not have.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        Path(path).write_bytes(converter.convert())
    except Exception as exc:  # the converter raises several types, all meaning "cannot"
        raise UserError(
            f"--format tflite: this model's operations ({_unsupported_ops(exc)}) have no "
            "TFLite built-in equivalent; export with --format saved_model instead."
        ) from exc


def _unsupported_ops(exc):
    ops = sorted(set(re.findall(r"'tf\.(\w+)'", str(exc))))
    return ", ".join(ops[:6]) + (", ..." if len(ops) > 6 else "") if ops else "some"


def _choose_version(out, version):
    existing = [int(p.name) for p in out.iterdir() if p.name.isdigit()] if out.is_dir() else []
    if version is None:
        return max(existing, default=0) + 1
    if version < 1:
        raise UserError(f"--version {version}: versions are positive integers.")
    if version in existing:
        raise UserError(
            f"{out / str(version)} already exists; versions are never overwritten, "
            f"choose --version {max(existing) + 1}."
        )
    return version


def _saved_model_outputs(path, sample):
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    outputs = signature(**{name: tf.constant(values) for name, values in sample.inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def _tflite_outputs(path, sample):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    results = [
        runner(**{name: np.asarray(values[i : i + 1]) for name, values in sample.inputs.items()})
        for i in range(len(sample))
    ]
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


def _check_outputs(outputs, expected, class_names, kind):
    key = "prediction" if class_names is None else "probabilities"
    got = outputs[key].reshape(expected.shape)
    difference = float(np.max(np.abs(got - expected)))
    scale = 1.0 if class_names else max(1.0, float(np.max(np.abs(expected))))
    if difference > TOLERANCE * scale:
        raise RuntimeError(
            f"the exported {kind} disagrees with model.keras on the training "
            f"sample (largest difference {difference:.3g}); nothing was written"
        )
    if class_names is not None:
        labels = np.asarray(class_names, dtype=object)[expected.argmax(axis=1)]
        if [v.decode() for v in outputs["label"]] != labels.tolist():
            raise RuntimeError(f"the exported {kind}'s labels disagree with model.keras")
