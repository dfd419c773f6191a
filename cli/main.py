"""The `bigmodel` command: thin click commands over the `keras_bigmodel` library.

Nothing here imports TensorFlow at module level: `--help` must answer instantly.
"""

import gc
import importlib.abc
import json
import logging
import os
import signal
import sys
import traceback

import click
from click.core import ParameterSource

from cli.options import data_override_options, debug_option, recipe_options
from keras_bigmodel import __version__
from keras_bigmodel.errors import TrainingInterrupted, UserError
from keras_bigmodel.models import get_recipe, recipe_names

DEBUG_KEY = "bigmodel.debug"


class UserFacingError(click.ClickException):
    """A `UserError`, shown as one line with exit code 2."""

    exit_code = 2


class BigmodelGroup(click.Group):
    """Turns library errors into one-line messages and the exit codes SPEC promises."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            _show_traceback(ctx)
            raise UserFacingError(str(exc)) from exc
        except TrainingInterrupted as exc:
            if exc.run_dir is None:
                click.echo(f"Stopped by {exc}; nothing was written.", err=True)
            else:
                saved = "" if exc.epoch is None else f"; a checkpoint is saved in {exc.run_dir}"
                click.echo(
                    f"Stopped by {exc} {exc.where()}{saved}. Continue with: {exc.resume_command()}",
                    err=True,
                )
            raise click.exceptions.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            _show_traceback(ctx)
            click.echo(f"Error: internal error: {type(exc).__name__}: {exc}", err=True)
            if not ctx.meta.get(DEBUG_KEY):
                click.echo(
                    "This is a bug in bigmodel; re-run with --debug for the traceback.", err=True
                )
            raise click.exceptions.Exit(1) from exc


def _show_traceback(ctx):
    if ctx.meta.get(DEBUG_KEY):
        traceback.print_exc(file=sys.stderr)


def _setup(ctx, *, quiet=False, tensorflow=True):
    """Configures logging, and imports TensorFlow with its start-up chatter hidden."""
    debug = ctx.meta.get(DEBUG_KEY, False)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "3")
    if tensorflow and "tensorflow" not in sys.modules:
        _import_tensorflow(quietly=not debug)
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    logger = logging.getLogger("keras_bigmodel")
    logger.setLevel(level)
    logger.propagate = False
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


#: Packages Keras and TensorFlow import, when they are installed, only for what the command
#: never uses: scikit-learn (with SciPy's statistics) for `keras.wrappers`' scikit-learn
#: estimators, 0.4-0.5 s of every command's start when installed; SciPy's sparse matrices
#: for TensorFlow's legacy Keras (`tensorflow.python.keras`), 0.06-0.09 s more; matplotlib
#: for `keras.visualization`'s galleries, 0.3-0.4 s, which `keras_bigmodel.plots` imports
#: itself where a command draws (measured on 2 cores). Each is imported inside `try`,
#: which leaves out what needs it.
KEPT_OUT_OF_KERAS = ("sklearn", "scipy", "matplotlib")


class _KeptOut(importlib.abc.MetaPathFinder):
    """Finds none of `names` (and their modules): Keras imports them inside `try`, and
    leaves out what needs them."""

    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} while Keras loads", name=name)
        return None


def _import_tensorflow(quietly):
    """Imports TensorFlow, and with it Keras, without `KEPT_OUT_OF_KERAS`; the command
    process may import those later as usual. `quietly` hides the notes TensorFlow's C++
    side prints straight to file descriptor 2 while it loads (oneDNN, CUDA drivers), before
    any log level applies.

    Python's cyclic garbage collector is off while TensorFlow loads, and what it loaded is
    then frozen out of every later collection (`gc.freeze`): modules, classes and functions
    that live as long as the process. Otherwise each full collection scans them all again,
    some 0.1-0.2 s each, five or six while TensorFlow loads and more while a model is traced
    (2 cores: the import 1.63-1.86 s against 2.02-2.29 s).
    """
    kept_out = _KeptOut(KEPT_OUT_OF_KERAS)
    sys.meta_path.insert(0, kept_out)
    sys.stderr.flush()
    saved = os.dup(2) if quietly else None
    collecting = gc.isenabled()
    gc.disable()
    try:
        if quietly:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        import tensorflow  # noqa: F401
    finally:
        sys.meta_path.remove(kept_out)
        if quietly:
            os.dup2(saved, 2)
            os.close(saved)
        if collecting:
            gc.enable()
    gc.freeze()


@click.group(cls=BigmodelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bigmodel")
@click.pass_context
def bigmodel(ctx):
    """Raw data to a trained, evaluated, exported Keras model, one command each."""
    if os.environ.get("BIGMODEL_DEBUG") == "1":
        ctx.meta[DEBUG_KEY] = True


@bigmodel.group()
def train():
    """Train a model and write its run directory."""


def explicit_options(ctx, params):
    """The options of `params` given on the command line, not left at their defaults."""
    return {
        key: value
        for key, value in params.items()
        if ctx.get_parameter_source(key) is not ParameterSource.DEFAULT
    }


def _train_command(name):
    recipe = get_recipe(name)

    @click.pass_context
    def command(ctx, config, **params):
        _setup(ctx, quiet=params.get("quiet") is True)
        from keras_bigmodel.training import train as train_model

        result = train_model(name, config=config, **explicit_options(ctx, params))
        if not result.is_chief:
            click.echo(f"Worker done; the chief writes the run directory {result.run_dir}")
            return
        click.echo(f"Run directory: {result.run_dir}")
        for split, metrics in result.metrics.items():
            click.echo(
                f"  {split}: "
                + "  ".join(
                    f"{key} {value:.4f}"
                    for key, value in metrics.items()
                    if key in ("loss", "accuracy", "f1_macro", "rmse", "mae", "r2")
                )
            )

    command.__doc__ = recipe.summary
    command = click.option(
        "--config",
        type=click.Path(dir_okay=False),
        help="YAML file of options (names with _ for -); flags win.",
    )(command)
    for decorator in recipe_options(recipe):
        command = decorator(command)
    return train.command(name, help=recipe.summary, short_help=recipe.summary)(command)


for _name in recipe_names():
    _train_command(_name)


@bigmodel.command("eval")
@click.argument("run_dir", type=click.Path())
@click.option("--data", required=True, help="Labelled data, laid out as for training.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@data_override_options
@debug_option
@click.pass_context
def eval_command(ctx, run_dir, data, as_json, **overrides):
    """Evaluate a run's model on labelled data."""
    _setup(ctx, quiet=as_json)
    from keras_bigmodel.evaluation import evaluate

    metrics = evaluate(run_dir, data, **overrides)
    if as_json:
        click.echo(json.dumps(metrics))
        return
    click.echo(format_metrics(metrics))


def format_metrics(metrics):
    """Formats eval metrics as a table for people."""
    lines = []
    for key, value in metrics.items():
        if isinstance(value, float):
            lines.append(f"{key:<16}{value:.4f}")
        elif isinstance(value, int):
            lines.append(f"{key:<16}{value}")
    if "per_class" in metrics:
        names = list(metrics["per_class"])
        width = max(8, *(len(n) for n in names)) + 2
        lines.append("")
        lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
        for name, row in metrics["per_class"].items():
            lines.append(
                f"{name:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}"
                f"{row['f1']:>10.4f}{row['support']:>10}"
            )
        lines.append("")
        lines.append("confusion matrix (rows true, columns predicted)")
        cell = max(6, *(len(n) + 1 for n in names))
        lines.append(" " * width + "".join(f"{n:>{cell}}" for n in names))
        for name, row in zip(names, metrics["confusion_matrix"], strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


@bigmodel.command()
@click.argument("run_dir", type=click.Path())
@click.option("--data", required=True, help="Data laid out as for training; labels optional.")
@click.option(
    "--out", type=click.Path(dir_okay=False), help="A .csv or .jsonl file [default: CSV on stdout]."
)
@data_override_options
@debug_option
@click.pass_context
def predict(ctx, run_dir, data, out, **overrides):
    """Predict with a run's model: input columns plus prediction and probabilities."""
    _setup(ctx, quiet=out is None)
    from keras_bigmodel.prediction import predict as predict_table

    table = predict_table(run_dir, data, out=out, **overrides)
    if out is None:
        click.echo(table.to_csv(index=False), nl=False)
    else:
        click.echo(f"Wrote {len(table)} predictions to {out}", err=True)


@bigmodel.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Export folder; the model goes into OUT/<version>/.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["saved_model", "tflite", "onnx"]),
    default="saved_model",
    show_default=True,
    help="Artifact format: a TensorFlow Serving SavedModel (raw inputs), or a TFLite or ONNX "
    "file (taking token ids or decoded pixels where the format cannot hold the preprocessing; "
    "ONNX needs the onnx extra).",
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "dynamic", "float16", "int8"]),
    default="none",
    show_default=True,
    help="TFLite only: store weights in 8 bits (dynamic) or 16 (float16), or compute in 8 "
    "bits (int8, calibrated on the run's sample). Refused if labels then disagree with "
    "model.keras on more than 5% of the sample.",
)
@click.option(
    "--version",
    type=click.IntRange(min=1),
    help="Version number [default: one more than the newest in OUT, 1 at first].",
)
@debug_option
@click.pass_context
def export(ctx, run_dir, out, fmt, version, quantize):
    """Export a run's model for serving (TensorFlow Serving layout), TFLite or ONNX."""
    _setup(ctx)
    from keras_bigmodel.exporting import export as export_model
    from keras_bigmodel.exporting import summary

    target = export_model(run_dir, out, format=fmt, version=version, quantize=quantize)
    click.echo(f"Exported {fmt} to {target}: {summary(target)}")


@bigmodel.command()
@click.argument("export_dir", type=click.Path())
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8501,
    show_default=True,
    help="TCP port (0: any free port, printed at start).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 opens the server to other machines.",
)
@click.option("--model-name", help="The name in the URLs [default: EXPORT_DIR's name].")
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=64,
    show_default=True,
    help="Larger request bodies are refused with 413.",
)
@click.option(
    "--batching/--no-batching",
    default=True,
    show_default=True,
    help="Merge concurrent requests into one model call.",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="The most rows one merged model call takes.",
)
@click.option(
    "--batch-timeout-ms",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="How long a batch waits for more requests; 0 merges only requests that "
    "arrive while the model is busy.",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.05),
    default=1,
    show_default=True,
    help="How often EXPORT_DIR is read for new versions.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per request on stderr: client, method, path, status, time.",
)
@debug_option
@click.pass_context
def serve(
    ctx,
    export_dir,
    port,
    host,
    model_name,
    max_body_mb,
    batching,
    max_batch_size,
    batch_timeout_ms,
    poll_seconds,
    access_log,
):
    """Serve an export folder with TensorFlow Serving's REST API."""
    _setup(ctx, tensorflow=False)
    from keras_bigmodel.serving import GRACE_SECONDS, ModelServer

    server = ModelServer(
        export_dir,
        host,
        port,
        model_name=model_name,
        max_body_mb=max_body_mb,
        batching=batching,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
        poll_seconds=poll_seconds,
    )
    if not access_log:
        logging.getLogger("keras_bigmodel.serving.access").setLevel(logging.WARNING)
    _setup(ctx)
    click.echo(f"Serving {export_dir} at {server.url} (Ctrl-C to stop)", err=True)
    stopped_by = server.run()
    if stopped_by is not None:
        name = signal.Signals(stopped_by).name
        cut_off = server.app.cut_off
        if cut_off:
            done = f"{cut_off} request(s) still running after {GRACE_SECONDS} s were cut off"
        else:
            done = "requests in flight were answered"
        click.echo(f"Stopped by {name}; {done}.", err=True)
        raise click.exceptions.Exit(128 + stopped_by)


@bigmodel.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "tsv", "jsonl", "parquet"]),
    help="Table format, when the file extension does not say.",
)
@debug_option
@click.pass_context
def inspect(ctx, path, as_json, fmt):
    """Describe a data file or folder, a run directory or an export."""
    _setup(ctx, quiet=True, tensorflow=os.path.isdir(path) or path.endswith((".tflite", ".onnx")))
    import yaml

    from keras_bigmodel.inspection import inspect_path

    description = inspect_path(path, fmt)
    if as_json:
        click.echo(json.dumps(description, default=str))
    else:
        # Lists and maps of plain values on one line each: shapes read as [-1, 10].
        text = yaml.safe_dump(
            description, sort_keys=False, allow_unicode=True, default_flow_style=None
        )
        click.echo(text, nl=False)


def main():
    """The console script's entry point.

    A command that imported TensorFlow leaves by `os._exit` once its output is flushed:
    every file it wrote is closed by then, and the interpreter's teardown of TensorFlow's
    objects, thread pools and caches would add about a second to every command.
    """
    try:
        bigmodel(prog_name="bigmodel")
    except SystemExit as exc:
        if "tensorflow" not in sys.modules or not isinstance(exc.code, int | None):
            raise
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(exc.code or 0)
