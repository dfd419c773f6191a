"""Registering the project's Keras layers and functions with Keras, without importing it.

SPEC promises that `keras.models.load_model` works after `import keras_bigmodel`, as it
does after `import keras_hub`. Importing Keras (and so TensorFlow) takes seconds, which
`bigmodel --help` must not pay, so `import keras_bigmodel` registers them at once only if
Keras is already imported; otherwise it asks Python to import `keras_bigmodel.layers`
right after Keras itself has been imported, whoever imports it.
"""

import importlib
import importlib.abc
import importlib.util
import sys

LAYERS_MODULE = "keras_bigmodel.layers"


def register_with_keras():
    """Imports the registered layers now if Keras is loaded, else as soon as it is."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "saving"):
        importlib.import_module(LAYERS_MODULE)
    elif not any(isinstance(finder, _AfterKeras) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Finds `keras` as the other finders do, and registers the layers once it has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or getattr(spec.loader, "_bigmodel", False):
            return spec
        run_keras = spec.loader.exec_module
        finder = self

        def exec_module(module):
            run_keras(module)
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)
            importlib.import_module(LAYERS_MODULE)

        spec.loader.exec_module = exec_module
        spec.loader._bigmodel = True
        return spec
