"""Model recipes, one file per architecture, registered by name.

Every module of this package is imported here, so a recipe registers itself by being a
file in `models/` with a `@register`-ed class: there is no list of them to keep. Importing
a recipe module must stay cheap: recipes import Keras and TensorFlow inside their methods,
so `bigmodel --help` can list every model and its options instantly.
"""

import importlib
import pkgutil

from keras_bigmodel.models.registry import get_recipe, recipe_names, register

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["get_recipe", "recipe_names", "register"]
