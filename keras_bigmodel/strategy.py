"""Choosing and configuring the `tf.distribute` strategy a run trains under."""

import json
import logging
import os
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
    #: this process's place among the workers, 0 to `workers - 1`.
    worker_index: int = 0

    def to_dict(self):
        return {"name": self.name, "replicas": self.replicas, "workers": self.workers}


def make_strategy(name, devices=None):
    """Creates the distribution strategy for `--strategy` and `--devices`.

    Args:
        name: `auto` (all GPUs if more than one, else one device), `default`, `mirrored`
            or `multiworker` (one of several processes described by `TF_CONFIG`).
        devices: replicas on this host. Without GPUs the CPU is split into this many
            logical devices, which is how the multi-replica path runs on a laptop or in CI.

    Returns:
        A `StrategyInfo`.

    Raises:
        UserError: more devices asked for than there are, or a missing or bad `TF_CONFIG`.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "multiworker":
        return _multiworker(devices, gpus)
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


def configure_threads(small_operations):
    """Sets how many threads TensorFlow splits each operation over, before it starts.

    TensorFlow's default is every core. For a network of `small_operations` on a machine
    without GPUs, half the cores (one on 2 cores, where it was measured) leaves the rest
    to run independent operations side by side (TensorFlow's inter-op threads) and to
    read data. Nothing changes where `TF_NUM_INTRAOP_THREADS` says otherwise, or once
    TensorFlow has started in this process (an earlier call of the Python API): its thread
    pools are made once.

    Returns:
        What `run.yaml` records: `{"intra_op": threads per operation, "cores": cores}`.
        The thread count changes the order of some sums, and so results by rounding.
    """
    import tensorflow as tf

    cores = _cores()
    if small_operations and "TF_NUM_INTRAOP_THREADS" not in os.environ:
        if not tf.config.list_physical_devices("GPU"):
            try:
                tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // 2))
            except RuntimeError:
                log.debug("TensorFlow has started: its threads per operation stay.")
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    if not threads:
        given = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
        threads = int(given) if given.isdigit() and int(given) > 0 else cores
    return {"intra_op": threads, "cores": cores}


def _cores():
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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


def _multiworker(devices, gpus):
    import tensorflow as tf

    cluster, _ = read_tf_config()
    if not gpus and devices and devices > 1:
        _split_cpu(devices)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    return StrategyInfo(
        strategy,
        "multiworker",
        strategy.num_replicas_in_sync,
        workers,
        worker_index(),
    )


def worker_index():
    """This process's place among the `TF_CONFIG` cluster's workers, the chief first."""
    cluster, task = read_tf_config()
    if "chief" in cluster:
        return 0 if task["type"] == "chief" else task["index"] + 1
    return task["index"]


def is_chief_task():
    """Tells whether this process is the chief of the `TF_CONFIG` cluster: the `chief` task
    if the cluster names one, else worker 0, as TensorFlow's own convention has it."""
    cluster, task = read_tf_config()
    if "chief" in cluster:
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


def read_tf_config():
    """Reads and checks the `TF_CONFIG` environment variable of a multi-worker run.

    Returns:
        `(cluster, task)`: the cluster's task addresses by type, and this process's task.

    Raises:
        UserError: `TF_CONFIG` is missing or does not describe a cluster and a task in it.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UserError(
            "--strategy multiworker needs the TF_CONFIG environment variable "
            "(the cluster and this worker's task); see README 'Scaling out'."
        )
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        addresses = cluster[task["type"]]
        if not 0 <= task["index"] < len(addresses):
            raise IndexError(f"task index {task['index']} out of range")
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(
            f"TF_CONFIG: not a cluster with this task in it ({exc!r}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}.'
        ) from exc
    return cluster, task
