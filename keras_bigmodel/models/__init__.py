"""Model recipes, one file per architecture, registered by name.

Importing a recipe module must stay cheap: recipes import Keras and TensorFlow inside
their methods, so `bigmodel --help` can list every model and its options instantly.
"""

from keras_bigmodel.models.registry import get_recipe, recipe_names, register

# Importing a recipe module registers it.
from keras_bigmodel.models import lstm  # noqa: E402, F401  isort: skip
from keras_bigmodel.models import linear  # noqa: E402, F401  isort: skip
from keras_bigmodel.models import cnn  # noqa: E402, F401  isort: skip

__all__ = ["get_recipe", "recipe_names", "register"]
