"""Choosing and configuring the `tf.distribute` strategy a run trains under."""

import logging
from dataclasses import dataclass

from keras_bigmodel.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class StrategyInfo:
    """The strategy a run uses, as recorded in `run.yaml`."""

    strategy: object
    name: str
    replicas: int
    workers: int

    def to_dict(self):
        return {"name": self.name, "replicas": self.replicas, "workers": self.workers}


def make_strategy(name, devices=None):
    """Creates the distribution strategy for `--strategy` and `--devices`.

    Args:
        name: `auto` (all GPUs if more than one, else one device), `default` or
            `mirrored`.
        devices: replicas on this host. Without GPUs the CPU is split into this many
            logical devices, which is how the multi-replica path runs on a laptop or in CI.

    Returns:
        A `StrategyInfo`.

    Raises:
        UserError: more devices asked for than there are.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "multiworker":
        # Keras 3's fit() cannot yet reduce its step results under
        # MultiWorkerMirroredStrategy (tensorflow#72388, keras#20585).
        raise UserError(
            "--strategy multiworker is not supported by this release yet; "
            "use --strategy mirrored to train on every device of one host."
        )
    if not gpus and devices and devices > 1:
        _split_cpu(devices)
    local = _local_devices(devices, gpus)
    if name == "default" or (name == "auto" and len(local) == 1):
        if devices and devices > 1:
            raise UserError(
                f"--strategy {name} runs on one device; use --strategy mirrored "
                f"or auto for --devices {devices}."
            )
        return StrategyInfo(tf.distribute.get_strategy(), "default", 1, 1)
    strategy = tf.distribute.MirroredStrategy(devices=local)
    return StrategyInfo(strategy, "mirrored", strategy.num_replicas_in_sync, 1)


def _local_devices(devices, gpus):
    import tensorflow as tf

    if gpus:
        names = [f"/gpu:{i}" for i in range(len(gpus))]
    else:
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
    if devices is None:
        return names if gpus else names[:1]
    if devices > len(names):
        kind = "GPUs" if gpus else "logical CPU devices"
        raise UserError(f"--devices {devices}: this host has only {len(names)} {kind}.")
    return names[:devices]


def _split_cpu(devices):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices
        )
    except RuntimeError:
        # The runtime is already initialised (a notebook, a test session); whatever logical
        # devices exist then are all there is, and _local_devices says so if too few.
        log.debug("logical CPU devices already configured")
