"""Training a registered model and writing its run directory."""

import dataclasses
import datetime
import logging
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_bigmodel import __version__, plots
from keras_bigmodel.checkpoint import (
    Progress,
    TrainingCheckpoint,
    read_checkpoint,
    restore_variables,
    write_history,
)
from keras_bigmodel.config import RunConfig, load_yaml, resolve
from keras_bigmodel.data.order import TrainingOrder, batches_per_pass
from keras_bigmodel.errors import TrainingInterrupted, UserError, progress_text
from keras_bigmodel.evaluation import score
from keras_bigmodel.models import get_recipe
from keras_bigmodel.multiworker import keras_multiworker_fixes
from keras_bigmodel.runs import (
    CHECKPOINTS,
    HISTORY_FILE,
    LABELS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RUN_FILE,
    SAMPLE_FILE,
    RunPlace,
    atomic_path,
    plan_run_directory,
    prepare_run_directory,
    replace_run,
    update_status,
    write_json,
    write_sample,
)
from keras_bigmodel.signals import stop_signals
from keras_bigmodel.strategy import configure_threads, is_chief_task, make_strategy
from keras_bigmodel.timing import EpochTimer, OnFirstEpochEnd

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What `train` returns: where the run went and how well the kept model does."""

    run_dir: Path
    config: RunConfig
    metrics: dict
    #: False for the workers of a multi-worker run that are not the chief: they write nothing.
    is_chief: bool = True


#: options a resumed run may change: they say how and how long to run, not what is learned.
#: The data may move, but its fingerprint must stay the run's.
RESUME_MAY_CHANGE = (
    "data",
    "val_data",
    "out",
    "overwrite",
    "resume",
    "epochs",
    "checkpoint_every",
    "strategy",
    "devices",
    "quiet",
    "debug",
)


#: options added since bigmodel 0.1, with the value that trains a run which recorded none
#: of them as it began (a resumed run must see the batches it would have seen).
ADDED_OPTIONS = {"bucket_by_length": False, "positions": "learned", "ngrams": 0}


def resolve_config(model, data=None, config=None, recorded=None, **flags):
    """Resolves a run's configuration: recipe defaults < YAML file < flags; for a resumed
    run, the run's own configuration < YAML file < flags, where only what may change on
    resume can differ.

    Args:
        model: the registered model name.
        data: the training data, if given apart from the other options.
        config: a YAML file of options.
        recorded: `(run_file, info)` of the run being resumed: its `run.yaml` and contents.
        **flags: options given explicitly; `None` means not given.

    Returns:
        A checked `RunConfig`.

    Raises:
        UserError: an unknown or bad option, no `--data` (unless resuming), or an option
            that differs from the resumed run's.
    """
    recipe = get_recipe(model)
    explicit = {name: value for name, value in flags.items() if value is not None}
    if data is not None:
        explicit["data"] = str(data)
    layers = [(str(config), load_yaml(config))] if config else []
    layers.append((None, explicit))
    if recorded:
        run_file, info = recorded
        options = {field.name for field in dataclasses.fields(recipe.options_class)}
        before = {k: v for k, v in ADDED_OPTIONS.items() if k in options}
        layers.insert(0, (str(run_file), {**before, **info["config"]}))
    resolved = resolve(
        model, recipe.options_class, layers=layers, train_defaults=recipe.train_defaults
    )
    if recorded:
        earlier = resolve(
            model, recipe.options_class, layers=layers[:1], train_defaults=recipe.train_defaults
        )
        before, now = earlier.to_dict(), resolved.to_dict()
        changed = [
            f"--{name.replace('_', '-')} {_shown(before[name])} -> {_shown(now[name])}"
            for name in now
            if name not in RESUME_MAY_CHANGE and now[name] != before[name]
        ]
        if changed:
            raise UserError(
                f"--resume: these options differ from the run's: {'; '.join(changed)}. "
                "Resume with the run's options, or train a new run (--overwrite or another "
                "--out)."
            )
    if not resolved.train.data and not resolved.train.resume:
        raise UserError("--data is required: a table, a glob of table shards, or a folder.")
    return resolved


def _shown(value):
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def check_same_data(place, described):
    """Refuses to resume on data other than the run's, compared by content.

    Raises:
        UserError: the training or validation data's fingerprint differs, naming the file.
    """
    recorded = place.info["data"]
    if described["sha256"] != recorded.get("sha256"):
        raise UserError(
            f"--resume: the training data {described['path']} is not the data {place.out} "
            f"was trained on ({recorded.get('path')}, {recorded.get('rows')} rows): its "
            f"sha256 is {described['sha256'][:12]}..., the run's "
            f"{str(recorded.get('sha256'))[:12]}...; resume with the same data, or train a "
            "new run."
        )
    before = (recorded.get("validation") or {}).get("sha256")
    now = (described.get("validation") or {}).get("sha256")
    if before != now:
        raise UserError(
            f"--resume: the validation data differs from the data {place.out} was "
            "validated on; resume with the same --val-data, or train a new run."
        )


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
        UserError: bad options or bad data; found before the run directory is written,
            but for data that fails only as it streams, which leaves the run `failed`.
        TrainingInterrupted: SIGINT or SIGTERM, after saving a checkpoint that
            `resume=True` picks up.
    """
    started = time.perf_counter()
    resolved = resolve_config(model, data=data, config=config, **flags)
    settings = resolved.train
    if settings.resume and not settings.out:
        raise UserError("--resume needs --out: the run directory to continue.")
    out = Path(settings.out or default_run_dir(model))
    if settings.resume:
        # Read only: every worker of a multi-worker run reads the run it continues.
        place = plan_run_directory(out, model=model, overwrite=settings.overwrite, resume=True)
        recorded = (place.workdir / RUN_FILE, place.info)
        resolved = resolve_config(model, data=data, config=config, recorded=recorded, **flags)
        _check_resumed_length(resolved.train, place.info)
    # Known only now: a resumed run takes its strategy from its run.yaml.
    chief = resolved.train.strategy != "multiworker" or is_chief_task()
    if not settings.resume:
        if chief:
            place = plan_run_directory(out, model=model, overwrite=settings.overwrite, resume=False)
        else:
            # The chief plans and writes the run directory; this worker writes nothing there.
            place = RunPlace(out=out, workdir=out)
    with stop_signals() as stop:
        try:
            return _train(model, resolved, place, chief, stop, started)
        except TrainingInterrupted as exc:
            # Before the run directory was made there is nothing to resume.
            written = (place.workdir / RUN_FILE).is_file()
            exc.run_dir, exc.model = (out if written else None), model
            exc.overwrite = resolved.train.overwrite
            raise


def _check_resumed_length(settings, info):
    """Refuses an `--epochs` that a resumed run cannot honour exactly.

    Raises:
        UserError: fewer epochs than the run has done, or another length for a cosine
            schedule, which spans the run's epochs.
    """
    recorded = info["config"].get("epochs")
    progress = info.get("progress") or {}
    done, step = progress.get("epoch", 0), progress.get("step", 0)
    if settings.epochs == recorded:
        return
    if settings.epochs < done or (settings.epochs == done and step):
        raise UserError(
            f"--resume: --epochs {settings.epochs}, but the run has already trained "
            f"{progress_text(done, step)}; give more epochs or none."
        )
    if settings.lr_schedule == "cosine":
        raise UserError(
            f"--resume: --epochs {recorded} -> {settings.epochs} would change the cosine "
            "learning-rate schedule, which spans the run's epochs; resume with the run's "
            "--epochs."
        )


def _train(model, resolved, place, chief, stop, started):
    import keras

    settings, options = resolved.train, resolved.options
    recipe = get_recipe(model)
    threads = configure_threads(recipe.small_operations)
    distribution = make_strategy(settings.strategy, settings.devices)
    stop.install()
    keras.utils.set_random_seed(settings.seed)
    data = recipe.data_reader.open_training(settings, options)
    info = _run_info(resolved, distribution, data)
    info["threads"] = threads
    restored = None
    if place.resuming:
        check_same_data(place, info["data"])
        info["created"] = place.info.get("created", info["created"])
        if place.info.get("progress"):
            info["progress"] = place.info["progress"]
        restored = read_checkpoint(place.workdir / CHECKPOINTS)
    progress = restored.progress if restored else Progress()
    preprocessing = recipe.fit_preprocessing(data, options, settings.seed)
    info["config"].update(recipe.settled_options(preprocessing))
    info.update(recipe.describe(preprocessing))
    order = TrainingOrder(settings.seed)
    batches = data.datasets(
        order,
        settings.batch_size,
        workers=distribution.workers,
        worker_index=distribution.worker_index,
        length_of=recipe.length_of(preprocessing, options),
    )
    datasets = [
        None
        if part is None
        else quick_to_free(recipe.network_dataset(part, preprocessing, options))
        for part in batches
    ]
    # Only the chief writes the run directory; the other workers of a multi-worker run keep
    # their logs in a scratch folder of their own, removed however training ends.
    with stop.deferred():
        workdir = (
            prepare_run_directory(place) if chief else Path(tempfile.mkdtemp(prefix="bigmodel-"))
        )
    status = "training"
    try:
        if chief:
            update_status(workdir, info, "training")
            if data.class_names:
                write_json(workdir / LABELS_FILE, data.class_names)
            write_sample(workdir / SAMPLE_FILE, data.sample_examples())
        timer = EpochTimer()
        end_to_end = _fit(
            recipe,
            resolved,
            data,
            (preprocessing, order, *datasets),
            distribution,
            workdir,
            restored,
            progress,
            stop,
            chief,
            info,
            timer,
        )
        if not chief:
            status = "finished"
            log.info("Worker finished; the chief writes the run directory %s.", place.out)
            return TrainResult(run_dir=place.out, config=resolved, metrics={}, is_chief=False)
        # Scored as `eval` scores: through the graph export serves, which traces faster.
        scored = recipe.serving_model(end_to_end, options)
        metrics = {
            split: score(scored, examples, recipe.task, data.class_names)[0]
            for split, examples in data.metric_examples().items()
        }
        with atomic_path(workdir / MODEL_FILE) as tmp:
            end_to_end.save(tmp)
        write_json(workdir / METRICS_FILE, metrics)
        # From the checkpoint's history, which a kill between two writes cannot leave short.
        write_history(workdir / HISTORY_FILE, progress.history)
        plots.learning_curves(
            workdir / "plots" / "learning_curves.png",
            {
                name: [row.get(name) for row in progress.history]
                for name in sorted({k for row in progress.history for k in row} - {"epoch"})
            },
        )
        info["epochs_run"] = progress.epoch
        info["timing"] = _timing(started, timer)
        # Marking the run finished and putting it in place is not interrupted: a signal
        # arriving now finds a finished run and nothing left to stop.
        with stop.shielded():
            update_status(workdir, info, "finished", progress=_progress(progress))
            status = "finished"
            replace_run(place)
        return TrainResult(run_dir=place.out, config=resolved, metrics=metrics)
    except TrainingInterrupted as exc:
        status = "interrupted"
        if exc.epoch is None:
            # Stopped outside an epoch (validation's end, scoring, saving): every epoch
            # done is checkpointed.
            exc.epoch, exc.step = progress.epoch, progress.step
        raise
    except BaseException as exc:
        status = "failed"
        info["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        raise
    finally:
        # A second signal must not cut the status short.
        with stop.shielded():
            if not chief:
                shutil.rmtree(workdir, ignore_errors=True)
            elif status != "finished":
                update_status(workdir, info, status, progress=_progress(progress))


def _fit(
    recipe,
    resolved,
    data,
    pipelines,
    distribution,
    workdir,
    restored,
    progress,
    stop,
    chief,
    info,
    timer,
):
    """Builds the network and trains it from the checkpoint (or from the start), moving
    `progress` on and checkpointing as it goes; returns the end-to-end model."""
    import keras

    settings, options = resolved.train, resolved.options
    class_names = data.class_names
    preprocessing, order, train_data, val_data = pipelines
    steps = settings.steps_per_epoch or batches_per_pass(data.train_rows, settings.batch_size)
    if progress.step >= steps:
        raise UserError(
            f"{workdir / CHECKPOINTS}: the checkpoint is at batch {progress.step} of an epoch "
            f"of {steps}; it does not belong to this run's data."
        )
    log.info(
        "Training %s on %d rows (%d for validation) with %s strategy, %d replica(s)%s.",
        recipe.name,
        data.train_rows,
        data.validation_rows,
        distribution.name,
        distribution.replicas,
        f", resuming {progress_text(progress.epoch, progress.step)}" if restored else "",
    )
    previous_policy = keras.mixed_precision.global_policy()
    if settings.mixed_precision:
        keras.mixed_precision.set_global_policy(_mixed_policy())
    try:
        with distribution.strategy.scope():
            network = recipe.build_network(preprocessing, options, len(class_names or [None]))
            network.compile(
                optimizer=make_optimizer(settings, steps),
                loss=_loss(recipe.task),
                metrics=_metrics(recipe.task),
            )
            network.optimizer.build(network.trainable_variables)
        if restored:
            where = workdir / CHECKPOINTS
            restore_variables(network.variables, restored.values("model"), "model", where)
            optimizer = network.optimizer.variables
            restore_variables(optimizer, restored.values("optimizer"), "optimizer", where)

        def on_save(progress):
            update_status(workdir, info, "training", progress=_progress(progress))

        checkpoint = TrainingCheckpoint(
            workdir / CHECKPOINTS,
            progress,
            steps_per_epoch=steps,
            stop=stop,
            every_steps=settings.checkpoint_every,
            patience=settings.early_stopping,
            monitor="val_loss" if val_data is not None else "loss",
            restored=restored,
            write=chief,
            history_file=workdir / HISTORY_FILE,
            on_save=on_save if chief else None,
        )
        callbacks = [
            checkpoint,
            timer,
            keras.callbacks.TensorBoard(str(workdir / "logs"), write_graph=False, profile_batch=0),
        ]
        if chief:
            # The learning curves are drawn after training: matplotlib loads meanwhile.
            callbacks.append(OnFirstEpochEnd(plots.import_in_background))
        with stop.during_training(distribution.strategy):
            with keras_multiworker_fixes(distribution.strategy):
                # An epoch stopped part-way is finished first, on its remaining batches.
                if progress.step and not progress.stopped:
                    order.start_at(progress.epoch * steps + progress.step)
                    # Keras creates the metrics' variables when it first runs a step; one
                    # batch evaluated (no weight, seed or data position changes) creates
                    # them, so the checkpoint's metric sums can go back into them.
                    network.evaluate(train_data, steps=1, verbose=0)
                    checkpoint.end_fit_after = progress.epoch
                    _run_epochs(
                        network, train_data, val_data, settings, callbacks, steps - progress.step
                    )
                if not progress.stopped and progress.epoch < settings.epochs:
                    order.start_at(progress.epoch * steps)
                    _run_epochs(network, train_data, val_data, settings, callbacks, steps)
        if checkpoint.best_weights is not None:
            # Early stopping keeps the weights of the best epoch, as Keras' does.
            network.set_weights(checkpoint.best_weights)
        end_to_end = recipe.end_to_end(network, preprocessing, options)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return end_to_end


def quick_to_free(dataset):
    """Turns off tf.data's autotuning model for a training pipeline.

    On TensorFlow 2.21 freeing an iterator waits for the autotuning thread, which now and
    then misses the wake-up and sleeps out its period: `fit()` then returns 4-5 s late
    (seen in about one run in three on this 2-core machine). Without the model, each
    `AUTOTUNE` parallel map runs on as many threads as there are cores and each `AUTOTUNE`
    prefetch keeps a small buffer, which feeds a CPU-bound step as well.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _run_epochs(network, train_data, val_data, settings, callbacks, steps):
    network.fit(
        train_data,
        validation_data=val_data,
        initial_epoch=callbacks[0].progress.epoch,
        epochs=settings.epochs,
        steps_per_epoch=steps,
        shuffle=False,
        callbacks=callbacks,
        verbose=0 if settings.quiet else (1 if sys.stdout.isatty() else 2),
    )


def _timing(started, timer):
    """Where this process's time went, in seconds: before the first batch (importing
    TensorFlow, reading, preprocessing, building), each epoch's training and validation,
    and everything after the last epoch (scoring, saving, plots) up to now."""
    now = time.perf_counter()
    first = timer.first_batch_at or now
    trained = sum(e["train"] + e["validation"] for e in timer.epochs)
    return {
        "total": round(now - started, 3),
        "before_training": round(first - started, 3),
        "epochs": timer.epochs,
        "after_training": round(max(now - first - trained, 0.0), 3),
    }


def _progress(progress):
    return {"epoch": progress.epoch, "step": progress.step}


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
        from keras_bigmodel.layers import FusedAdam

        return FusedAdam(rate)
    if settings.optimizer == "adamw":
        return keras.optimizers.AdamW(rate)
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9)
    return keras.optimizers.RMSprop(rate)


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
        "updated": None,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": config,
        "data": _describe_data(data),
        "strategy": distribution.to_dict(),
        "versions": {
            "bigmodel": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


def _describe_data(data):
    described = data.describe()
    if data.layout is not None:
        # What the reader inferred: eval and predict read any table or folder by it.
        described["layout"] = dataclasses.asdict(data.layout)
    return described
