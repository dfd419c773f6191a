"""Describing what a path holds: a data table, an image folder, a run directory or an export."""

import json
from pathlib import Path

import numpy as np

from keras_bigmodel.data.tables import read_table
from keras_bigmodel.errors import UserError
from keras_bigmodel.export_tools import PREPROCESSING_FILE
from keras_bigmodel.exporting import EXPORT_FILE, MODEL_FILES, describe_spec
from keras_bigmodel.runs import (
    LABELS_FILE,
    METRICS_FILE,
    RUN_FILE,
    read_run_info,
    run_status,
    unfinished_hint,
)

#: a column with at most this many distinct values is described by its balance.
MAX_CLASSES_SHOWN = 20


def inspect_path(path, fmt=None):
    """Describes a data file or glob, an image folder, a run directory or an export folder.

    Returns:
        A dict whose `kind` is `table`, `image_folder`, `run`, `export` (a folder of
        versions) or `model` (one version folder, or a `.tflite` or `.onnx` file).

    Raises:
        UserError: the path does not exist or holds none of these.
    """
    folder = Path(path)
    if folder.is_dir():
        if (folder / RUN_FILE).is_file():
            return describe_run(folder)
        if _model_file(folder):
            return {"kind": "model", "path": str(folder), **describe_version(folder)}
        if _versions(folder):
            return describe_export(folder)
        return describe_image_folder(folder)
    if folder.suffix in (".tflite", ".onnx") and folder.is_file():
        return {"kind": "model", "path": str(folder), **describe_model_file(folder)}
    return describe_table(path, fmt)


def describe_table(path, fmt=None):
    """Rows, columns and, per column, type, missing cells, label balance or text lengths."""
    table = read_table(path, fmt)
    frame = table.frame
    columns = {}
    for name in frame.columns:
        series = frame[name]
        info = {
            "dtype": str(series.dtype),
            "missing": int(series.isna().sum()),
            "distinct": int(series.nunique()),
        }
        if info["distinct"] <= MAX_CLASSES_SHOWN:
            counts = series.value_counts()
            info["balance"] = {str(k): int(v) for k, v in counts.items()}
        if series.dtype == object or str(series.dtype) in ("str", "string"):
            words = series.dropna().astype(str).str.split().str.len().to_numpy()
            if len(words) and info["distinct"] > MAX_CLASSES_SHOWN:
                info["words"] = {
                    "mean": round(float(words.mean()), 1),
                    "median": float(np.median(words)),
                    "p95": float(np.percentile(words, 95)),
                    "max": int(words.max()),
                }
        elif series.dtype.kind in "if":
            info["range"] = [float(series.min()), float(series.max())]
            info["mean"] = float(series.mean())
        columns[str(name)] = info
    return {
        "kind": "table",
        "path": str(path),
        "format": table.format,
        "files": len(table.paths),
        "rows": len(frame),
        "columns": columns,
    }


def describe_image_folder(folder):
    """Classes (sub-folders), their image counts, the images' sizes and colour modes, and
    the files that do not decode or are not images."""
    import collections

    from keras_bigmodel.data import images
    from keras_bigmodel.data.image_folder import decoded_shapes

    scan = images.scan_image_folder(folder)
    if not any(scan.classes.values()):
        raise UserError(
            f"{folder}: not a run directory, an export, or an image folder with one "
            "sub-folder per class."
        )
    files = [p for found in scan.classes.values() for p in found]
    # Streamed: a folder of any size is described holding one image at a time.
    decoded, shapes = decoded_shapes(files)
    sizes = collections.Counter(
        f"{h}x{w}" for (h, w, _), ok in zip(shapes, decoded, strict=True) if ok
    )
    modes = collections.Counter(
        header[2] for header in map(images.image_header, files) if header is not None
    )
    unreadable = [path for path, ok in zip(files, decoded, strict=True) if not ok]
    described = {
        "kind": "image_folder",
        "path": str(folder),
        "classes": {name: len(found) for name, found in scan.classes.items()},
        "images": len(files),
        "sizes": _most_common(sizes),
        "modes": _most_common(modes),
        "unreadable": len(unreadable),
    }
    if unreadable:
        described["unreadable_files"] = [str(p) for p in unreadable[:MAX_CLASSES_SHOWN]]
    ignored = scan.ignored + scan.beside
    if ignored:
        described["ignored_files"] = [str(p) for p in ignored[:MAX_CLASSES_SHOWN]]
    return described


def _most_common(counter):
    """The `MAX_CLASSES_SHOWN` most common values and their counts, and how many others."""
    shown = dict(counter.most_common(MAX_CLASSES_SHOWN))
    others = sum(counter.values()) - sum(shown.values())
    return {**shown, "others": others} if others else shown


def describe_run(folder):
    """The run's model, status, configuration, data fingerprint and final metrics; for a run
    that is not finished, `next` says how to continue it."""
    info = read_run_info(folder)
    described = {"kind": "run", "path": str(folder), **info}
    if run_status(info) != "finished":
        described["next"] = unfinished_hint(folder, info)
    metrics_file = folder / METRICS_FILE
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            if not isinstance(metrics, dict) or not all(
                isinstance(v, dict) for v in metrics.values()
            ):
                raise ValueError("expected metrics by split")
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{metrics_file}: corrupt ({exc}).") from exc
        described["metrics"] = {
            split: {k: v for k, v in values.items() if not isinstance(v, (dict, list))}
            for split, values in metrics.items()
        }
    return described


def describe_export(folder):
    """Each version of an export folder, as `describe_version` describes it."""
    return {
        "kind": "export",
        "path": str(folder),
        "versions": {v.name: describe_version(v) for v in _versions(folder)},
    }


def describe_version(version):
    """A version folder: its format, inputs and outputs (dtypes and shapes), class names,
    size, quantization and the agreement with model.keras measured at export."""
    model_file = _model_file(version)
    if model_file.name == "saved_model.pb":
        described = {"format": "saved_model", **_describe_saved_model(version)}
        described["bytes"] = sum(p.stat().st_size for p in version.rglob("*") if p.is_file())
    else:
        described = describe_model_file(model_file)
    for name, key in (
        (LABELS_FILE, "class_names"),
        (PREPROCESSING_FILE, "preprocessing"),
        (EXPORT_FILE, "export"),
    ):
        if (version / name).is_file():
            described[key] = _read_json(version / name)
    record = described.pop("export", {})
    for key in ("quantize", "float_bytes", "agreement", "model", "run"):
        if key in record:
            described[key] = record[key]
    return described


def describe_model_file(path):
    """A `.tflite` or `.onnx` file: format, size, inputs and outputs."""
    path = Path(path)
    described = {"format": path.suffix[1:], "bytes": path.stat().st_size}
    try:
        if path.suffix == ".tflite":
            from keras_bigmodel import tflite_export

            described.update(tflite_export.describe(path))
        else:
            from keras_bigmodel import onnx_export

            reason = onnx_export.missing_extra()
            if reason:
                described["note"] = reason
            described.update(onnx_export.describe(path))
    except UserError:
        raise
    except Exception as exc:  # any failure to read is the file's
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"{path}: not a readable {path.suffix[1:]} model ({reason}).") from exc
    return described


def _describe_saved_model(version):
    import tensorflow as tf

    try:
        signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    except Exception as exc:  # any failure to load is the folder's
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"{version}: not a loadable SavedModel ({reason}).") from exc
    inputs = signature.structured_input_signature[1]
    return {
        "inputs": {k: describe_spec(v) for k, v in inputs.items()},
        "outputs": {k: describe_spec(v) for k, v in signature.structured_outputs.items()},
    }


def _read_json(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: corrupt ({exc}).") from exc


def _model_file(folder):
    """The model file of a version folder, or None."""
    names = ("saved_model.pb", *MODEL_FILES.values())
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _versions(folder):
    """The version folders of an export folder, by number."""
    found = [p for p in folder.iterdir() if p.name.isdigit() and _model_file(p)]
    return sorted(found, key=lambda p: int(p.name))
