"""The run directory, and the one place that writes files atomically."""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from keras_bigmodel.errors import UserError

RUN_FILE = "run.yaml"
MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"


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
    """A finished (or resumable) run directory and what it records."""

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
        allowed = self.recipe.data_options
        values = {
            f.name: self.config[f.name]
            for f in dataclasses.fields(self.recipe.Options)
            if f.name in self.config
        }
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in allowed:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} does not apply to a {self.model_name} run.")
            values[name] = value
        return self.recipe.Options(**values)

    def read_examples(self, data, fmt=None, with_targets=True, nrows=None, **overrides):
        """Reads data laid out as the run's training data (or as the overrides say)."""
        return self.recipe.read_examples(
            data, self.options(**overrides), fmt or None, with_targets=with_targets, nrows=nrows
        )

    @property
    def model_path(self):
        return self.path / MODEL_FILE

    def class_names(self):
        """Returns the class names in output order, or `None` for a regression run."""
        labels = self.path / LABELS_FILE
        if not labels.exists():
            return None
        return json.loads(labels.read_text(encoding="utf-8"))

    def load_model(self):
        """Loads the end-to-end model in Keras' safe mode."""
        import keras

        import keras_bigmodel.data.images  # noqa: F401  registers what the model file names
        import keras_bigmodel.layers  # noqa: F401

        return keras.models.load_model(self.model_path, safe_mode=True)


def open_run(path):
    """Opens a finished run directory.

    Raises:
        UserError: the folder is missing, or holds no trained model.
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory.")
    run_file = path / RUN_FILE
    if not run_file.is_file() or not (path / MODEL_FILE).is_file():
        raise UserError(
            f"{path}: not a finished run directory (no {RUN_FILE} or {MODEL_FILE}); "
            "train one with 'bigmodel train'."
        )
    return Run(path=path, info=yaml.safe_load(run_file.read_text(encoding="utf-8")))


def check_run_directory(path, *, overwrite, resume):
    """Checks that a run may write into this folder, before any work starts.

    Raises:
        UserError: the folder exists and neither `overwrite` nor `resume` allows reuse, or
            `resume` finds nothing to resume.
    """
    path = Path(path)
    if resume:
        if not (path / "checkpoints").is_dir():
            raise UserError(f"--resume: {path} has no checkpoints/ to resume from.")
    elif path.exists() and any(path.iterdir()) and not overwrite:
        raise UserError(
            f"{path} already exists; pass --overwrite to replace it or --resume to continue."
        )


def prepare_run_directory(path, *, overwrite, resume):
    """Makes the folder a run writes into, keeping its checkpoints only when resuming."""
    path = Path(path)
    check_run_directory(path, overwrite=overwrite, resume=resume)
    if not resume and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
