"""The registry of model recipes, by the name `bigmodel train NAME` uses."""

from keras_bigmodel.errors import UserError

_RECIPES = {}


def register(recipe_class):
    """Class decorator: registers a recipe under its `name`."""
    if recipe_class.name in _RECIPES:
        raise ValueError(f"a recipe named {recipe_class.name!r} is already registered")
    from keras_bigmodel.data.kinds import KINDS

    if recipe_class.reader not in KINDS:
        raise ValueError(
            f"recipe {recipe_class.name!r} reads {recipe_class.reader!r}, which is not one of "
            f"the readers ({', '.join(KINDS)})"
        )
    _RECIPES[recipe_class.name] = recipe_class()
    return recipe_class


def get_recipe(name):
    """Returns the registered recipe called `name`.

    Raises:
        UserError: no recipe has that name.
    """
    if name not in _RECIPES:
        raise UserError(f"unknown model '{name}' (known: {', '.join(recipe_names())}).")
    return _RECIPES[name]


def recipe_names():
    """Returns the registered names, in registration order."""
    return list(_RECIPES)
