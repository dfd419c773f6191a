"""Exporting a run's model: SavedModel (TensorFlow Serving layout), TFLite and ONNX.

Every artifact is reloaded and checked against `model.keras` on the training sample kept
in the run directory before its version folder appears. The version folder also holds
`export.json`: the format, quantization, size and the agreement measured.
"""

from pathlib import Path

import numpy as np

from keras_bigmodel.errors import UserError
from keras_bigmodel.evaluation import model_outputs
from keras_bigmodel.export_tools import PREPROCESSING_FILE
from keras_bigmodel.runs import LABELS_FILE, atomic_path, open_run, write_json

FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
#: the largest difference from model.keras of an unquantized artifact (probabilities; a
#: regression's values relative to their scale).
TOLERANCE = 1e-4
#: the least share of the sample's rows a quantized classifier must label as model.keras
#: does. 64 sample rows: at most three may change. The digits cnn keeps all of them.
MIN_LABEL_AGREEMENT = 0.95
#: the largest mean difference of a quantized regression from model.keras, relative to
#: the mean size of model.keras' predictions on the sample.
MAX_RELATIVE_ERROR = 0.02
EXPORT_FILE = "export.json"
MODEL_FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}


def export(run_dir, out, format="saved_model", version=None, quantize="none"):
    """Exports a run's model into `out/<version>/` and checks the artifact before returning.

    Args:
        run_dir: a run directory written by `train`.
        out: the export folder; each version is a numbered sub-folder.
        format: `saved_model` (TensorFlow Serving), `tflite` or `onnx`.
        version: the version number; by default one more than the newest there (1 at first).
            An existing version is never overwritten.
        quantize: for TFLite, `none`, `dynamic` (8-bit weights), `float16` (16-bit weights)
            or `int8` (8-bit weights and activations, calibrated on the run's sample).

    Returns:
        The path of the version folder written; its `export.json` says what was measured.

    Raises:
        UserError: an unknown format, an existing version, a model the format cannot
            express, or a quantized model that disagrees with `model.keras`.
    """
    if format not in FORMATS:
        raise UserError(f"--format {format}: choose one of {', '.join(FORMATS)}.")
    if quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize {quantize}: choose one of {', '.join(QUANTIZATIONS)}.")
    if quantize != "none" and format != "tflite":
        raise UserError(
            f"--quantize {quantize} applies to --format tflite only, not --format {format}."
        )
    run = open_run(run_dir)
    out = Path(out)
    version = _choose_version(out, version)
    target = out / str(version)
    model = run.load_model()
    if format == "onnx":
        refusal = run.recipe.onnx_refusal(model)
        if refusal:
            raise UserError(f"--format onnx: {refusal}.")
        from keras_bigmodel.onnx_export import missing_extra

        missing = missing_extra()
        if missing:
            raise UserError(missing + ".")
    if quantize == "int8" and run.recipe.int8_refusal:
        raise UserError(f"--quantize int8: {run.recipe.int8_refusal}.")
    class_names = run.class_names()
    # The training rows kept in the run directory: export needs no training data.
    sample = run.sample_examples()
    expected = model_outputs(model, sample)
    record = {"format": format, "model": run.model_name, "run": str(run.path)}
    with atomic_path(target) as tmp:
        if format == "saved_model":
            write_saved_model(run.recipe.serving_model(model, run.options()), tmp, class_names)
            outputs = _saved_model_outputs(tmp, sample)
            _check_outputs(_main_output(outputs, class_names), expected, class_names, "SavedModel")
            if class_names:
                _check_labels(outputs["label"], expected, class_names, "SavedModel")
            record["bytes"] = _size(tmp)
        else:
            portable = run.recipe.portable_model(model, run.options())
            # Probabilities only: the class names are in labels.json beside the file.
            function = signature_function(portable.model, portable.specs, class_names, False)
            feeds = portable.prepare(sample)
            tmp.mkdir()
            path = tmp / MODEL_FILES[format]
            if format == "tflite":
                from keras_bigmodel import tflite_export

                scratch = tmp.parent / "saved_model"
                record.update(
                    tflite_export.write(portable, function, path, quantize, feeds, scratch)
                )
                outputs = tflite_export.outputs(path, feeds)
            else:
                from keras_bigmodel import onnx_export

                onnx_export.write(function, portable.specs, path)
                record["bytes"] = path.stat().st_size
                outputs = onnx_export.outputs(path, feeds)
            got = _main_output(outputs, class_names)
            if quantize == "none":
                _check_outputs(got, expected, class_names, MODEL_FILES[format])
            else:
                record["agreement"] = _check_agreement(got, expected, class_names, quantize)
            record["quantize"] = quantize
            record["inputs"] = {spec.name: describe_spec(spec) for spec in portable.specs}
            if portable.preprocessing is not None:
                write_json(tmp / PREPROCESSING_FILE, portable.preprocessing)
            for name, text in portable.files.items():
                (tmp / name).write_text(text, encoding="utf-8")
        if class_names:
            write_json(tmp / LABELS_FILE, class_names)
        write_json(tmp / EXPORT_FILE, record)
    return target


def summary(target):
    """One line on what `export.json` of a version folder records: size, quantization and
    the agreement with model.keras."""
    import json

    record = json.loads((Path(target) / EXPORT_FILE).read_text(encoding="utf-8"))
    size = f"{record['bytes'] / 1e6:.2f} MB"
    agreement = record.get("agreement")
    if agreement is None:
        return f"{size}, same outputs as model.keras on the run's sample"
    size += (
        f" ({record['quantize']}: {record['size_ratio']:.0%} of the float model's "
        f"{record['float_bytes'] / 1e6:.2f} MB)"
    )
    if "label_agreement" in agreement:
        return (
            f"{size}; labels agree with model.keras on {agreement['same_label']} of "
            f"{agreement['rows']} sample rows ({agreement['label_agreement']:.1%})"
        )
    return (
        f"{size}; predictions within {agreement['relative_error']:.2%} of model.keras on "
        f"average over {agreement['rows']} sample rows"
    )


def signature_function(model, specs, class_names, labels):
    """The function a signature holds: one tensor per spec, by name, to `probabilities` for
    a classifier (and, with `labels`, `label`: each row's class name) or `prediction` for
    a regression (`[batch]`)."""
    import tensorflow as tf

    names = [spec.name for spec in specs]

    def serve(*tensors):
        if isinstance(model.input, dict):
            outputs = model(dict(zip(names, tensors, strict=True)), training=False)
        else:
            outputs = model(tensors[0], training=False)
        if class_names is None:
            return {"prediction": tf.reshape(outputs, [-1])}
        if not labels:
            return {"probabilities": outputs}
        label = tf.gather(tf.constant(class_names), tf.argmax(outputs, axis=1))
        return {"label": label, "probabilities": outputs}

    return serve


def write_saved_model(model, path, class_names):
    """Writes a SavedModel whose `serving_default` signature takes raw, named inputs (one
    `[batch]` tensor per model input) and returns `label` and `probabilities` for a
    classifier, `prediction` for a regression."""
    from keras_bigmodel.portable import raw_inputs

    specs = raw_inputs(model).specs
    write_endpoint(model, signature_function(model, specs, class_names, labels=True), specs, path)


def write_endpoint(model, function, specs, path):
    """Writes a SavedModel whose `serving_default` signature is `function` of `specs`."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", function, input_signature=specs)
    archive.write_out(str(path), verbose=False)


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


def _main_output(outputs, class_names):
    return outputs["prediction" if class_names is None else "probabilities"]


def _check_outputs(got, expected, class_names, kind):
    got = np.asarray(got).reshape(expected.shape)
    difference = float(np.max(np.abs(got - expected)))
    scale = 1.0 if class_names else max(1.0, float(np.max(np.abs(expected))))
    if difference > TOLERANCE * scale:
        raise RuntimeError(
            f"the exported {kind} disagrees with model.keras on the training "
            f"sample (largest difference {difference:.3g}); nothing was written"
        )


def _check_labels(labels, expected, class_names, kind):
    wanted = np.asarray(class_names, dtype=object)[expected.argmax(axis=1)]
    if [v.decode() for v in labels] != wanted.tolist():
        raise RuntimeError(f"the exported {kind}'s labels disagree with model.keras")


def _check_agreement(got, expected, class_names, quantize):
    """Measures a quantized model against model.keras on the sample; refuses one that
    falls short of `MIN_LABEL_AGREEMENT` or `MAX_RELATIVE_ERROR`."""
    got = np.asarray(got).reshape(expected.shape)
    rows = len(expected)
    if class_names:
        same = int(np.sum(got.argmax(axis=1) == expected.argmax(axis=1)))
        agreement = {
            "rows": rows,
            "same_label": same,
            "label_agreement": same / rows,
            "max_probability_difference": float(np.max(np.abs(got - expected))),
        }
        if same / rows < MIN_LABEL_AGREEMENT:
            raise UserError(
                f"--quantize {quantize}: the quantized model labels {rows - same} of {rows} "
                f"sample rows differently from model.keras ({same / rows:.1%} agree, "
                f"{MIN_LABEL_AGREEMENT:.0%} needed); nothing was written. Try --quantize "
                "dynamic or float16."
            )
        return agreement
    error = float(np.mean(np.abs(got - expected)) / max(np.mean(np.abs(expected)), 1e-12))
    agreement = {
        "rows": rows,
        "relative_error": error,
        "max_difference": float(np.max(np.abs(got - expected))),
    }
    if error > MAX_RELATIVE_ERROR:
        raise UserError(
            f"--quantize {quantize}: the quantized model's predictions differ from "
            f"model.keras by {error:.2%} on average on the sample ({MAX_RELATIVE_ERROR:.0%} "
            "allowed); nothing was written. Try --quantize dynamic or float16."
        )
    return agreement


def _size(folder):
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def describe_spec(spec):
    """A `tf.TensorSpec` as `export.json` and `bigmodel inspect` show it (-1: any size)."""
    return {"dtype": spec.dtype.name, "shape": [-1 if d is None else d for d in spec.shape]}
