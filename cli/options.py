"""Click options generated from the library's configuration dataclasses, so there is one
source for every option's name, type, default and help."""

import typing

import click

from keras_bigmodel.config import TrainConfig, option_fields
from keras_bigmodel.data.kinds import KINDS
from keras_bigmodel.models import get_recipe, recipe_names


def _set_debug(ctx, param, value):
    if value:
        ctx.meta["bigmodel.debug"] = True
    return value


def debug_option(command):
    """Adds `--debug`: tracebacks and TensorFlow's own logs."""
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Show tracebacks and TensorFlow's logs.",
    )(command)


def click_option(f, annotation, default, *, toggle):
    """Builds the click option for one configuration field.

    Args:
        f: the dataclass field; its metadata holds help, choices and bounds.
        annotation: the field's resolved type.
        default: the default shown in `--help` (the recipe's, where it has one).
        toggle: make a boolean `--name/--no-name` rather than a plain flag.
    """
    flag = "--" + f.name.replace("_", "-")
    meta = f.metadata
    kwargs = {"help": meta["help"], "default": default, "show_default": default is not None}
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    # A tuple's arguments are its items' types: the flag itself takes one string, "32,64".
    base = tuple if typing.get_origin(annotation) is tuple else args[0]
    if base is bool:
        decls = [f"{flag}/--no-{flag[2:]}"] if toggle else [flag]
        kwargs.update(is_flag=True, show_default=toggle)
        if f.name == "debug":
            kwargs.update(callback=_set_debug, is_eager=True)
    else:
        decls = [flag]
        if meta.get("choices"):
            kwargs["type"] = click.Choice(meta["choices"])
        elif base in (int, float):
            kwargs["type"] = click.INT if base is int else click.FLOAT
        else:
            kwargs["type"] = click.STRING
            if isinstance(default, tuple):
                kwargs["default"] = ",".join(map(str, default))
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
    return click.option(*decls, f.name, **kwargs)


def recipe_options(recipe):
    """Returns the option decorators of `bigmodel train NAME`: shared, then the model's own."""
    decorators = []
    for f, annotation in option_fields(TrainConfig):
        default = recipe.train_defaults.get(f.name, f.default)
        decorators.append(click_option(f, annotation, default, toggle=False))
    for f, annotation in option_fields(recipe.options_class):
        decorators.append(click_option(f, annotation, f.default, toggle=True))
    # click lists options in the order the decorators are applied, last first.
    return list(reversed(decorators))


def data_override_options(command):
    """Adds the data options of every model (`--text-column`, ...) and `--format` to a
    command that reads data for an existing run; each defaults to what the run used."""
    seen = {}
    for name in recipe_names():
        recipe = get_recipe(name)
        for f, annotation in option_fields(recipe.options_class):
            if f.name in KINDS[recipe.reader].data_options and f.name not in seen:
                seen[f.name] = (f, annotation)
    for f, annotation in reversed(list(seen.values())):
        option = click_option(f, annotation, None, toggle=True)
        command = option(command)
    format_field = next(f for f, _ in option_fields(TrainConfig) if f.name == "format")
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(format_field.metadata["choices"]),
        help=format_field.metadata["help"],
    )(command)
