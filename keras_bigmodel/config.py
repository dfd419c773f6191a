"""Typed configuration: recipe defaults < a YAML file < explicit flags, checked strictly."""

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from keras_bigmodel.errors import UserError


def option(default, help, *, choices=None, minimum=None, maximum=None, below=None, metavar=None):
    """Declares one configuration option: its default, help text and allowed values.

    Args:
        default: the value when neither the recipe, the YAML file nor a flag sets it.
        help: one line for `--help`.
        choices: the allowed values, if the option is an enumeration.
        minimum: the smallest allowed value (inclusive), for numbers.
        maximum: the largest allowed value (inclusive), for numbers.
        below: a value the option must stay strictly below, for numbers.
        metavar: how `--help` shows the value.

    Returns:
        A `dataclasses.field` carrying the metadata that the CLI and the checks read.
    """
    metadata = {
        "help": help,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "below": below,
        "metavar": metavar,
    }
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Options every model shares: data, output, optimisation and distribution."""

    data: str | None = option(
        None, "Training data: a table (.csv .tsv .jsonl .parquet), a glob of shards, or a folder."
    )
    format: str | None = option(
        None,
        "Table format, when the file extension does not say.",
        choices=("csv", "tsv", "jsonl", "parquet"),
    )
    val_data: str | None = option(None, "Validation data, instead of a split of --data.")
    val_split: float = option(
        0.1,
        "Fraction of --data held out for validation (stratified for classifiers).",
        minimum=0.0,
        below=1.0,
    )
    out: str | None = option(None, "Run directory [default: runs/<model>-<UTC timestamp>].")
    overwrite: bool = option(
        False,
        "Replace an existing run directory (never any other folder); the old run stays "
        "whole until the new one has finished.",
    )
    resume: bool = option(
        False,
        "Continue an unfinished run in --out exactly where its last checkpoint left it; "
        "its options and data must be the run's.",
    )
    epochs: int = option(
        20,
        "Maximum number of epochs: passes over the training data, or --steps-per-epoch "
        "batches each.",
        minimum=1,
    )
    steps_per_epoch: int | None = option(
        None,
        "Batches per epoch [default: one pass over the training rows]; epochs then go "
        "on through the data where the last one stopped.",
        minimum=1,
    )
    checkpoint_every: int = option(
        0,
        "Also checkpoint every this many batches, not only at each epoch's end (0 = only "
        "there); SIGINT and SIGTERM checkpoint at the batch they arrive in.",
        minimum=0,
    )
    batch_size: int = option(32, "Global batch size, across all replicas.", minimum=1)
    learning_rate: float = option(1e-3, "Initial learning rate.", minimum=0.0)
    optimizer: str = option("adam", "Optimizer.", choices=("adam", "adamw", "sgd", "rmsprop"))
    lr_schedule: str = option(
        "constant",
        "Learning-rate schedule over the run.",
        choices=("constant", "cosine", "exponential"),
    )
    early_stopping: int = option(
        3,
        "Stop after this many epochs without a better validation loss (training loss "
        "without validation data), keeping the best weights (0 = off).",
        minimum=0,
    )
    stream_above_mb: int = option(
        256,
        "Stream data larger than this from disk instead of holding it in memory: tables by "
        "file size (a text vocabulary adapts on a sample of 100,000 rows; feature statistics "
        "cover every row), image folders by their decoded size (decoded batch by batch "
        "instead of once).",
        minimum=0,
    )
    seed: int = option(42, "Seed for every source of randomness.", minimum=0)
    strategy: str = option(
        "auto", "Distribution strategy.", choices=("auto", "default", "mirrored", "multiworker")
    )
    devices: int | None = option(
        None, "Replicas on this host: GPUs where present, else logical CPU devices.", minimum=1
    )
    mixed_precision: bool = option(False, "Compute in 16-bit floats, keep variables in 32-bit.")
    quiet: bool = option(False, "No progress bars or progress messages.")
    debug: bool = option(False, "Show tracebacks and TensorFlow's own logs.")


@dataclass
class RunConfig:
    """The resolved configuration of one training run."""

    model: str
    train: TrainConfig
    options: typing.Any

    def to_dict(self):
        """Returns the configuration as one flat mapping, as written to `run.yaml`."""
        flat = {"model": self.model}
        flat.update(dataclasses.asdict(self.train))
        flat.update(dataclasses.asdict(self.options))
        return flat


def option_fields(cls):
    """Returns `(field, resolved type)` pairs for every option of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def load_yaml(path):
    """Reads a `--config` file into a mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config: no such file '{path}'.")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}).") from exc
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise UserError(f"{path}: expected a mapping of option names to values.")
    return content


def resolve(model, options_class, *, layers=(), train_defaults=None):
    """Resolves a run's configuration from ordered layers of settings.

    Args:
        model: the registered model name.
        options_class: the model's options dataclass.
        layers: `(source, mapping)` pairs, lowest priority first; `source` names where the
            values came from in error messages (a file name, or `None` for flags).
        train_defaults: the recipe's own defaults for shared options (for example more
            epochs for a linear model).

    Returns:
        A checked `RunConfig`.

    Raises:
        UserError: an unknown key, a wrong type or a value out of range, named.
    """
    train_fields = dict((f.name, (f, t)) for f, t in option_fields(TrainConfig))
    model_fields = dict((f.name, (f, t)) for f, t in option_fields(options_class))
    values = {}
    for name, (f, _) in {**train_fields, **model_fields}.items():
        values[name] = f.default
    values.update(train_defaults or {})
    for source, mapping in layers:
        for key, value in mapping.items():
            if key not in train_fields and key not in model_fields:
                known = ", ".join(sorted({**train_fields, **model_fields}))
                raise UserError(f"{source}: unknown option '{key}' for {model} (known: {known}).")
            f, annotation = train_fields.get(key) or model_fields[key]
            values[key] = check_value(f, annotation, value, source)
    train = TrainConfig(**{k: values[k] for k in train_fields})
    options = options_class(**{k: values[k] for k in model_fields})
    return RunConfig(model=model, train=train, options=options)


def check_value(f, annotation, value, source):
    """Coerces one option's value to its declared type and checks its range.

    Args:
        f: the option's dataclass field.
        annotation: its resolved type.
        value: the value from a YAML file or a flag.
        source: where the value came from (a file name), or `None` for a command-line flag.

    Returns:
        The value, of the declared type.
    """
    where = f"--{f.name.replace('_', '-')}" if source is None else f"{source}: {f.name}"
    value = _coerce(annotation, value, where)
    meta = f.metadata
    if value is None:
        return value
    if meta.get("choices") and value not in meta["choices"]:
        raise UserError(f"{where} must be one of {', '.join(meta['choices'])}; got '{value}'.")
    numbers = value if isinstance(value, tuple) else (value,)
    for number in numbers:
        if meta.get("minimum") is not None and number < meta["minimum"]:
            raise UserError(f"{where} must be at least {meta['minimum']}; got {number}.")
        if meta.get("maximum") is not None and number > meta["maximum"]:
            raise UserError(f"{where} must be at most {meta['maximum']}; got {number}.")
        if meta.get("below") is not None and number >= meta["below"]:
            raise UserError(f"{where} must be below {meta['below']}; got {number}.")
    return value


def _coerce(annotation, value, where):
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0]
    if value is None:
        if optional:
            return None
        raise UserError(f"{where} needs a value.")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where} must be true or false; got {value!r}.")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"{where} must be an integer; got {value!r}.")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UserError(f"{where} must be a number; got {value!r}.")
    if annotation is str:
        if isinstance(value, (str, os.PathLike)):
            return str(value)
        raise UserError(f"{where} must be a string; got {value!r}.")
    if typing.get_origin(annotation) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        try:
            return tuple(int(str(item).strip()) for item in items)
        except (TypeError, ValueError):
            raise UserError(
                f"{where} must be a comma-separated list of integers; got {value!r}."
            ) from None
    raise TypeError(f"unsupported option type {annotation} for {where}")
