"""Shared fixtures: quiet TensorFlow, two logical CPU devices, a CLI runner."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402


def pytest_configure(config):
    import tensorflow as tf

    # Two logical CPU devices, so MirroredStrategy runs with two replicas as it would on
    # two GPUs; this must happen before TensorFlow initialises its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    # TensorFlow starts now, with its own thread counts: otherwise whichever test trained
    # first would set them for the rest of the process (`configure_threads`).
    tf.config.list_logical_devices("CPU")


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def invoke(runner):
    """Runs `bigmodel ARGS...` in-process; returns the click Result."""
    from cli.main import bigmodel

    def run(*args):
        return runner.invoke(bigmodel, [str(a) for a in args], catch_exceptions=False)

    return run
