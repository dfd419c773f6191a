"""The run directory, and the one place that writes files atomically."""

import base64
import contextlib
import dataclasses
import datetime
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from keras_bigmodel.errors import UserError, progress_text, resume_command

RUN_FILE = "run.yaml"
MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
SAMPLE_FILE = "sample.json"
CHECKPOINTS = "checkpoints"
STATUSES = ("training", "interrupted", "failed", "finished")
#: training inputs kept in the run directory, for export's checks.
KEPT_INPUTS = 64


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`, renamed onto it only if the block succeeds.

    Works for files and for folders, so an interrupted or failed write never leaves a
    half-written artifact under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path, text):
    """Writes a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj):
    """Writes a JSON file atomically, indented for people to read."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_yaml(path, obj):
    """Writes a YAML file atomically, keys in the order given."""
    write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


@dataclass
class Run:
    """A finished run directory and what it records."""

    path: Path
    info: dict

    @property
    def model_name(self):
        return self.info["model"]

    @property
    def config(self):
        return self.info["config"]

    @property
    def recipe(self):
        from keras_bigmodel.models import get_recipe

        return get_recipe(self.model_name)

    def options(self, **overrides):
        """Returns the model's options as trained, with data options overridden.

        Raises:
            UserError: an override that is not one of this model's data options.
        """
        allowed = self.recipe.data_reader.data_options
        values = {
            f.name: self.config[f.name]
            for f in dataclasses.fields(self.recipe.options_class)
            if f.name in self.config
        }
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in allowed:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} does not apply to a {self.model_name} run.")
            values[name] = value
        return self.recipe.options_class(**values)

    @property
    def layout(self):
        """What the reader inferred from the training data (feature columns, image size)."""
        recorded = (self.info.get("data") or {}).get("layout")
        try:
            return self.recipe.data_reader.layout_from(recorded, self.options())
        except (TypeError, ValueError) as exc:
            raise UserError(f"{self.path / RUN_FILE}: corrupt data layout ({exc}).") from exc

    def read_examples(self, data, fmt=None, with_targets=True, nrows=None, **overrides):
        """Reads data laid out as the run's training data (or as the overrides say)."""
        return self.recipe.data_reader.read(
            data,
            self.options(**overrides),
            self.layout,
            fmt or None,
            with_targets=with_targets,
            nrows=nrows,
        )

    def sample_examples(self):
        """The training rows kept in the run directory, as model inputs.

        Raises:
            UserError: the run has no readable sample (and its training data is gone).
        """
        path = self.path / SAMPLE_FILE
        if not path.is_file():
            # Runs of bigmodel 0.1 kept no sample: read the training data where it was.
            return self.read_examples(
                self.info["data"]["path"],
                fmt=self.config.get("format"),
                with_targets=False,
                nrows=KEPT_INPUTS,
            )
        return read_sample(path)

    @property
    def model_path(self):
        return self.path / MODEL_FILE

    def class_names(self):
        """Returns the class names in output order, or `None` for a regression run."""
        labels = self.path / LABELS_FILE
        if not labels.exists():
            return None
        try:
            names = json.loads(labels.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{labels}: not valid JSON ({exc}).") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError(f"{labels}: expected a list of class names.")
        return names

    def load_model(self):
        """Loads the end-to-end model in Keras' safe mode.

        Raises:
            UserError: the file is refused by safe mode (a Lambda layer, an unknown class)
                or does not load at all.
        """
        import keras

        import keras_bigmodel.layers  # noqa: F401  registers what the model file names

        try:
            return keras.models.load_model(self.model_path, safe_mode=True)
        except Exception as exc:  # any failure to load is the file's
            raise UserError(f"{self.model_path}: cannot load the model ({_reason(exc)}).") from exc

    def serving_model(self):
        """Loads the end-to-end model as `export` serves it (`Recipe.serving_model`): the
        same outputs, from a graph that is quicker to trace and to run."""
        return self.recipe.serving_model(self.load_model(), self.options())


def _reason(exc):
    text = " ".join(str(exc).split())
    if "safe_mode" in text or "Lambda" in text:
        return "refused by Keras' safe mode: it holds a Lambda layer or arbitrary code"
    first = text.split(". ")[0] if text else type(exc).__name__
    return first[:300]


def read_run_info(path):
    """Reads and checks a run directory's `run.yaml`.

    Raises:
        UserError: the file is missing, not YAML, or not a bigmodel run record.
    """
    run_file = Path(path) / RUN_FILE
    try:
        info = yaml.safe_load(run_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{path}: not a run directory (no {RUN_FILE}).") from exc
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{run_file}: corrupt ({reason}).") from exc
    if (
        not isinstance(info, dict)
        or not isinstance(info.get("model"), str)
        or not isinstance(info.get("config"), dict)
        or not isinstance(info.get("data"), dict)
    ):
        raise UserError(f"{run_file}: corrupt (not a bigmodel run record: no model, config, data).")
    status = run_status(info)
    if status not in STATUSES:
        raise UserError(f"{run_file}: corrupt (unknown status '{status}').")
    return info


def run_status(info):
    """A run's status; runs of bigmodel 0.1 recorded none, and only finished ones remain."""
    return info.get("status", "finished")


def unfinished_hint(path, info):
    """One sentence on an unfinished run: its status, where it stopped, what to do."""
    status = run_status(info)
    progress = info.get("progress") or {}
    where = " " + progress_text(progress.get("epoch", 0), progress.get("step", 0))
    if status == "failed":
        error = info.get("error", "")
        return (
            f"{path}: the run failed{where} ({error}); fix the cause and continue it with: "
            f"{resume_command(info['model'], path)}"
        )
    return (
        f"{path}: the run is {status}{where}, not finished; continue it with: "
        f"{resume_command(info['model'], path)}"
    )


def open_run(path):
    """Opens a finished run directory.

    Raises:
        UserError: the folder is missing, its `run.yaml` is corrupt, the run is not
            finished, or it holds no trained model.
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory.")
    if not (path / RUN_FILE).is_file():
        raise UserError(
            f"{path}: not a finished run directory (no {RUN_FILE}); "
            "train one with 'bigmodel train'."
        )
    info = read_run_info(path)
    if run_status(info) != "finished":
        raise UserError(unfinished_hint(path, info))
    if not (path / MODEL_FILE).is_file():
        raise UserError(f"{path}: not a finished run directory (no {MODEL_FILE}).")
    from keras_bigmodel.models import get_recipe

    get_recipe(info["model"])  # an unknown model name is a tampered run.yaml
    return Run(path=path, info=info)


@dataclass
class RunPlace:
    """Where a training run writes.

    Attributes:
        out: the run directory the user named.
        workdir: where this run writes until it has finished: `out` itself, or a folder
            beside it when it replaces another run (`--overwrite`).
        resuming: whether the run continues from `workdir`'s checkpoint.
        info: the `run.yaml` of the run being resumed.
    """

    out: Path
    workdir: Path
    resuming: bool = False
    info: dict | None = None

    @property
    def replacing(self):
        return self.workdir != self.out


def replacement_path(out):
    """The folder a run replacing `out` is built in, beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.replacement"


def plan_run_directory(out, *, model, overwrite, resume):
    """Decides where a run writes, before any work starts.

    Raises:
        UserError: the folder exists and neither `overwrite` nor `resume` allows reuse;
            `overwrite` names a folder that is not a run directory; `resume` finds no run,
            a finished one, or a run of another model.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder.")
    settle_replacement(out)
    if resume:
        replacement = replacement_path(out)
        if overwrite and (replacement / RUN_FILE).is_file():
            return _resumable(out, replacement, model)
        return _resumable(out, out, model)
    if not out.exists() or not any(out.iterdir()):
        return RunPlace(out=out, workdir=out)
    if not overwrite:
        raise UserError(
            f"{out} already exists; pass --overwrite to replace it or --resume to continue."
        )
    if not (out / RUN_FILE).is_file():
        raise UserError(
            f"--overwrite: {out} is not a bigmodel run directory (no {RUN_FILE}), so it was "
            "left as it is; choose another --out or remove it yourself."
        )
    read_run_info(out)  # a corrupt record is not replaced either
    return RunPlace(out=out, workdir=replacement_path(out))


def _resumable(out, workdir, model):
    if not (workdir / RUN_FILE).is_file():
        raise UserError(
            f"--resume: {out} is not a run directory (no {RUN_FILE}); nothing to resume."
        )
    info = read_run_info(workdir)
    if info["model"] != model:
        raise UserError(f"--resume: {out} is a {info['model']} run, not {model}.")
    if run_status(info) == "finished":
        if workdir == out and (replacement_path(out) / RUN_FILE).is_file():
            raise UserError(
                f"--resume: {out} is finished, and a run replacing it was stopped; continue "
                f"that one with: {resume_command(model, out, overwrite=True)}"
            )
        raise UserError(
            f"--resume: {out} is finished; nothing to resume (train it again with "
            "--overwrite, or choose another --out)."
        )
    return RunPlace(out=out, workdir=workdir, resuming=True, info=info)


def prepare_run_directory(place):
    """Makes the folder the run writes into; a replacement starts from an empty one."""
    if place.replacing and not place.resuming and place.workdir.exists():
        shutil.rmtree(place.workdir)
    place.workdir.mkdir(parents=True, exist_ok=True)
    return place.workdir


def settle_replacement(out):
    """Finishes what a replacement stopped between its end and taking the old run's place
    left undone: puts a finished replacement in place, or the old run back where it was."""
    out = Path(out)
    replacement, retired = replacement_path(out), retired_path(out)
    if (replacement / RUN_FILE).is_file():
        try:
            finished = run_status(read_run_info(replacement)) == "finished"
        except UserError:
            finished = False
        if finished:
            replace_run(RunPlace(out=out, workdir=replacement))
            return
    if retired.is_dir() and not out.exists():
        os.replace(retired, out)


def retired_path(out):
    """Where the run a replacement takes the place of waits, for a moment, to be removed."""
    out = Path(out)
    return out.parent / f".{out.name}.replaced"


def replace_run(place):
    """Puts a finished replacement in place of the run it replaces."""
    if not place.replacing:
        return
    retired = retired_path(place.out)
    if retired.exists():
        shutil.rmtree(retired)
    if place.out.exists():
        os.replace(place.out, retired)
    os.replace(place.workdir, place.out)
    shutil.rmtree(retired, ignore_errors=True)


def update_status(path, info, status, **fields):
    """Records a run's status in `run.yaml`, with the time and any other fields given."""
    info["status"] = status
    info["updated"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    info.update(fields)
    write_yaml(Path(path) / RUN_FILE, info)


def write_sample(path, examples, rows=KEPT_INPUTS):
    """Keeps the first `rows` training examples' raw model inputs as JSON: text as strings,
    encoded images as base64, numbers as numbers (`null` for a missing one)."""
    sample = {}
    for name, values in examples.inputs.items():
        values = values[:rows]
        if values.dtype == object and len(values) and isinstance(values[0], bytes):
            kind, items = "bytes", [base64.b64encode(v).decode("ascii") for v in values]
        elif values.dtype.kind in "fiu":
            kind = "float32"
            items = [None if math.isnan(v) else float(v) for v in values.astype(np.float64)]
        else:
            kind, items = "string", [str(v) for v in values]
        sample[name] = {"dtype": kind, "values": items}
    write_json(path, sample)


def read_sample(path):
    """Reads `write_sample`'s file back into `Examples`.

    Raises:
        UserError: the file is not what `write_sample` writes.
    """
    import pandas as pd

    from keras_bigmodel.data.examples import Examples

    try:
        sample = json.loads(Path(path).read_text(encoding="utf-8"))
        inputs = {}
        for name, column in sample.items():
            values = column["values"]
            if column["dtype"] == "bytes":
                inputs[name] = np.array([base64.b64decode(v) for v in values], dtype=object)
            elif column["dtype"] == "float32":
                inputs[name] = np.array(
                    [np.nan if v is None else v for v in values], dtype=np.float32
                )
            else:
                inputs[name] = np.array([str(v) for v in values], dtype=object)
        rows = len(next(iter(inputs.values())))
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise UserError(f"{path}: corrupt sample of training inputs ({exc!r}).") from exc
    return Examples(
        inputs=inputs,
        targets=None,
        frame=pd.DataFrame(index=range(rows)),
        source=str(path),
        paths=[Path(path)],
    )
