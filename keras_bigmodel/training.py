"""Training a registered model and writing its run directory."""

import datetime
import logging
import math
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from keras_bigmodel import __version__, plots
from keras_bigmodel.config import RunConfig, load_yaml, resolve
from keras_bigmodel.data.order import EpochOrder
from keras_bigmodel.data.sources import open_training_data
from keras_bigmodel.errors import UserError
from keras_bigmodel.evaluation import score
from keras_bigmodel.models import get_recipe
from keras_bigmodel.multiworker import keras_multiworker_fixes
from keras_bigmodel.runs import (
    HISTORY_FILE,
    LABELS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RUN_FILE,
    atomic_path,
    check_run_directory,
    prepare_run_directory,
    write_json,
    write_yaml,
)
from keras_bigmodel.strategy import is_chief_task, make_strategy

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What `train` returns: where the run went and how well the kept model does."""

    run_dir: Path
    config: RunConfig
    metrics: dict
    #: False for the workers of a multi-worker run that are not the chief: they write nothing.
    is_chief: bool = True


def resolve_config(model, data=None, config=None, **flags):
    """Resolves a run's configuration: recipe defaults < `run.yaml` on resume < YAML < flags.

    Args:
        model: the registered model name.
        data: the training data, if given apart from the other options.
        config: a YAML file of options.
        **flags: options given explicitly; `None` means not given.

    Returns:
        A checked `RunConfig`.
    """
    recipe = get_recipe(model)
    explicit = {name: value for name, value in flags.items() if value is not None}
    if data is not None:
        explicit["data"] = str(data)
    layers = [(str(config), load_yaml(config))] if config else []
    layers.append((None, explicit))
    resolved = resolve(model, recipe.Options, layers=layers, train_defaults=recipe.train_defaults)
    run_file = Path(resolved.train.out or "") / RUN_FILE
    if resolved.train.resume and resolved.train.out and run_file.is_file():
        saved = yaml.safe_load(run_file.read_text(encoding="utf-8"))
        if saved["model"] != model:
            raise UserError(
                f"--resume: {resolved.train.out} is a {saved['model']} run, not {model}."
            )
        earlier = {k: v for k, v in saved["config"].items() if k not in ("resume", "overwrite")}
        layers.insert(0, (str(run_file), earlier))
        resolved = resolve(
            model, recipe.Options, layers=layers, train_defaults=recipe.train_defaults
        )
    if not resolved.train.data:
        raise UserError("--data is required: a table, a glob of table shards, or a folder.")
    return resolved


def train(model, data=None, config=None, **flags):
    """Trains a registered model and writes its run directory.

    Args:
        model: `lstm`, `cnn`, `linear` or `transformer`.
        data: the training data.
        config: a YAML file of options (same names as the flags, `_` for `-`).
        **flags: any option of `bigmodel train MODEL`.

    Returns:
        A `TrainResult`.

    Raises:
        UserError: bad options or bad data, before anything is written.
        KeyboardInterrupt: after saving a checkpoint that `resume=True` picks up.
    """
    resolved = resolve_config(model, data=data, config=config, **flags)
    settings, options = resolved.train, resolved.options
    recipe = get_recipe(model)
    out = Path(settings.out or default_run_dir(model))
    chief = settings.strategy != "multiworker" or is_chief_task()
    if chief:
        check_run_directory(out, overwrite=settings.overwrite, resume=settings.resume)

    import keras

    distribution = make_strategy(settings.strategy, settings.devices)
    keras.utils.set_random_seed(settings.seed)
    data = open_training_data(recipe, settings, options)
    class_names = data.class_names
    preprocessing = recipe.fit_preprocessing(data.adapt_examples, options, settings.seed)
    order = EpochOrder(settings.seed)
    train_data, val_data = data.datasets(
        preprocessing, order, workers=distribution.workers, worker_index=distribution.worker_index
    )
    steps = settings.steps_per_epoch
    if data.fixed_steps and not steps:
        steps = max(1, math.ceil(data.train_rows / settings.batch_size))
    if steps:
        # Epochs of a fixed number of batches continue through the data, round and round.
        train_data = train_data.repeat()

    # Only the chief writes the run directory; other workers of a multi-worker run keep
    # their checkpoints and logs in a scratch folder of their own.
    workdir = out if chief else _worker_scratch(out, settings.resume)
    info = _run_info(resolved, distribution, data)
    if chief:
        prepare_run_directory(out, overwrite=settings.overwrite, resume=settings.resume)
        write_yaml(out / RUN_FILE, info)
        if class_names:
            write_json(out / LABELS_FILE, class_names)

    log.info(
        "Training %s on %d rows (%d for validation) with %s strategy, %d replica(s).",
        model,
        data.train_rows,
        data.validation_rows,
        distribution.name,
        distribution.replicas,
    )
    previous_policy = keras.mixed_precision.global_policy()
    if settings.mixed_precision:
        keras.mixed_precision.set_global_policy(_mixed_policy())
    try:
        steps_per_epoch = steps or max(1, math.ceil(data.train_rows / settings.batch_size))
        with distribution.strategy.scope():
            network = recipe.build_network(
                preprocessing, options, len(class_names) if class_names else 1
            )
            network.compile(
                optimizer=make_optimizer(settings, steps_per_epoch),
                loss=_loss(recipe.task),
                metrics=_metrics(recipe.task),
            )
        callbacks = build_callbacks(workdir, settings, has_validation=val_data is not None)
        callbacks.append(order.callback())
        with keras_multiworker_fixes(distribution.strategy):
            _fit(network, train_data, val_data, settings, callbacks, steps)
        end_to_end = recipe.end_to_end(network, preprocessing, options)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    if not chief:
        shutil.rmtree(workdir, ignore_errors=True)
        log.info("Worker finished; the chief writes the run directory %s.", out)
        return TrainResult(run_dir=out, config=resolved, metrics={}, is_chief=False)
    metrics = {
        split: score(end_to_end, examples, recipe.task, class_names)[0]
        for split, examples in data.metric_examples().items()
    }
    with atomic_path(out / MODEL_FILE) as tmp:
        end_to_end.save(tmp)
    write_json(out / METRICS_FILE, metrics)
    history = pd.read_csv(out / HISTORY_FILE)
    plots.learning_curves(
        out / "plots" / "learning_curves.png",
        {c: history[c].tolist() for c in history.columns if c != "epoch"},
    )
    info["status"] = "finished"
    info["epochs_run"] = int(len(history))
    write_yaml(out / RUN_FILE, info)
    return TrainResult(run_dir=out, config=resolved, metrics=metrics)


def _worker_scratch(out, resume):
    scratch = Path(tempfile.mkdtemp(prefix="bigmodel-worker-"))
    if resume and (out / "checkpoints").is_dir():
        # Every worker must restart from the same epoch and weights as the chief.
        shutil.copytree(out / "checkpoints", scratch / "checkpoints")
    return scratch


def default_run_dir(model):
    """Returns `runs/<model>-<UTC timestamp>`."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{model}-{stamp}"


def make_optimizer(settings, steps_per_epoch):
    """Builds the optimizer and learning-rate schedule that `settings` name."""
    import keras

    rate = settings.learning_rate
    if settings.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, settings.epochs * steps_per_epoch)
    elif settings.lr_schedule == "exponential":
        # A tenth less every epoch.
        rate = keras.optimizers.schedules.ExponentialDecay(rate, steps_per_epoch, 0.9)
    if settings.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    if settings.optimizer == "adamw":
        return keras.optimizers.AdamW(rate)
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9)
    return keras.optimizers.RMSprop(rate)


def build_callbacks(out, settings, *, has_validation):
    """Returns the run's callbacks: checkpoints, early stopping, history and TensorBoard."""
    import keras

    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "checkpoints"), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(out / HISTORY_FILE), append=settings.resume),
        keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False, profile_batch=0),
    ]
    if settings.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss" if has_validation else "loss",
                patience=settings.early_stopping,
                restore_best_weights=True,
            )
        )
    return callbacks


def _fit(network, train_data, val_data, settings, callbacks, steps_per_epoch):
    verbose = 0 if settings.quiet else (1 if sys.stdout.isatty() else 2)
    try:
        network.fit(
            train_data,
            validation_data=val_data,
            epochs=settings.epochs,
            steps_per_epoch=steps_per_epoch,
            shuffle=False,
            callbacks=callbacks,
            verbose=verbose,
        )
    except KeyboardInterrupt:
        # Keep what this epoch has learned so far: --resume restarts from here.
        callbacks[0]._save_model()
        raise


def _loss(task):
    import keras

    if task == "classification":
        return keras.losses.SparseCategoricalCrossentropy()
    return keras.losses.MeanSquaredError()


def _metrics(task):
    import keras

    if task == "classification":
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return [keras.metrics.MeanAbsoluteError(name="mae")]


def _mixed_policy():
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def _run_info(resolved, distribution, data):
    import keras
    import tensorflow as tf

    config = resolved.to_dict()
    config.pop("model")
    return {
        "model": resolved.model,
        "status": "training",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": config,
        "data": data.describe(),
        "strategy": distribution.to_dict(),
        "versions": {
            "bigmodel": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
