"""The image folder reader: one sub-folder of images per class.

A folder is listed (paths and classes), and every image is decoded once in a streaming
`tf.data` pass that keeps nothing but its shape: that pass finds the files that do not
decode (reported, or skipped with `--skip-unreadable`) and gives the sizes and channels the
layout is chosen from. Training then decodes inside the `tf.data` pipeline, in parallel:
once into memory when the decoded images fit under `--stream-above-mb`, else batch by batch
from the files, so no folder is ever held whole. Batches hold one input, `pixels`: float32
`[batch, height, width, channels]` in 0..255, as `keras_bigmodel.layers.DecodeImages`
gives them inside the saved model.
"""

import logging
import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keras_bigmodel.data import images
from keras_bigmodel.data.examples import Examples
from keras_bigmodel.data.kinds import (
    ENLARGED_SIDE,
    LARGEST_DEFAULT_SIDE,
    SMALLEST_DEFAULT_SIDE,
)
from keras_bigmodel.data.labels import class_names_from, encode_labels
from keras_bigmodel.data.order import in_order
from keras_bigmodel.data.reader import Reader, TrainingData, metric_rows
from keras_bigmodel.data.sources import check_split, describe, with_shard_policy
from keras_bigmodel.data.split import split_indices
from keras_bigmodel.errors import UserError

log = logging.getLogger(__name__)

#: images decoded together when filling the in-memory cache.
DECODE_BATCH = 256


@dataclass
class ImageLayout:
    """What every image becomes before the network: its size and number of channels."""

    height: int
    width: int
    channels: int


class ImageFolderReader(Reader):
    """Reads a folder of images laid out by class."""

    kind = "image_folder"
    Layout = ImageLayout
    targets = "classes"

    def read(self, data, options, layout=None, fmt=None, with_targets=True, nrows=None):
        # Checked before the folder is scanned, which can take a while.
        image_shape(options)
        listed = images.list_image_folder(data, with_classes=with_targets)
        files = listed.files[:nrows]
        classes = None if listed.classes is None else listed.classes[:nrows]
        kept, _ = check_images(files, data, options.skip_unreadable)
        files = [files[i] for i in kept]
        classes = None if classes is None else [classes[i] for i in kept]
        return image_examples(files, classes, data, with_targets)

    def open_training(self, settings, options):
        return ImageFolderData(settings, options)


def decoded_shapes(files):
    """Decodes every file once, streaming and in parallel, with the decoder the model itself
    uses, keeping only the shapes: a file that decodes here decodes in training, `eval`,
    `predict` and the export alike.

    Returns:
        `(decoded, shapes)`: whether each file decodes, and its `[height, width, channels]`
        as decoded (zeros where it does not), a bool and an int array.
    """
    import tensorflow as tf

    indices = tf.data.Dataset.range(len(files))
    paths = tf.data.Dataset.from_tensor_slices(tf.constant([str(p) for p in files], tf.string))
    shapes = tf.data.Dataset.zip(indices, paths).map(
        lambda i, path: (
            i,
            tf.shape(tf.io.decode_image(tf.io.read_file(path), expand_animations=False)),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    found = np.zeros((len(files), 3), dtype=np.int64)
    decoded = np.zeros(len(files), dtype=bool)
    for batch, shape in shapes.ignore_errors().batch(4096):
        found[batch.numpy()] = shape.numpy()
        decoded[batch.numpy()] = True
    return decoded, found


def check_images(files, source, skip_unreadable):
    """Finds the files that do not decode (see `decoded_shapes`) and applies the policy.

    Returns:
        `(kept, shapes)`: the indices of the files that decode, and their `[height, width,
        channels]` as decoded, an int array.

    Raises:
        UserError: a file cannot be read; files that do not decode, unless
            `skip_unreadable`; or none decodes.
    """
    for path in files:
        if not os.access(path, os.R_OK):
            raise UserError(f"{path}: cannot read (permission denied).")
    decoded, found = decoded_shapes(files)
    bad = np.flatnonzero(~decoded)
    if len(bad):
        bad_files = [files[i] for i in bad]
        if not skip_unreadable:
            raise UserError(
                f"{source}: {len(bad)} file(s) do not decode as {images.IMAGE_KINDS} images: "
                f"{images.named_files(bad_files)}; fix or remove them, or pass "
                "--skip-unreadable to skip them."
            )
        log.warning(
            "Skipping %d file(s) that do not decode as images: %s",
            len(bad),
            images.named_files(bad_files),
        )
        if len(bad) == len(files):
            raise UserError(f"{source}: none of the images decode; nothing to read.")
    kept = np.flatnonzero(decoded)
    return kept, found[kept]


def image_examples(files, classes, source, with_targets=True):
    """Reads the files' bytes into `Examples` whose input is `image_bytes`."""
    frame = pd.DataFrame({"path": [str(p) for p in files]})
    if classes is not None:
        frame["label"] = classes
    return Examples(
        inputs={"image_bytes": images.read_contents(files)},
        targets=np.asarray(classes, dtype=object) if with_targets else None,
        frame=frame,
        source=str(source),
        paths=list(files),
        target_name="folder",
    )


class ImageFolderData(TrainingData):
    """A training folder (and its validation images): paths and classes in memory, pixels
    decoded in the pipeline, cached in memory when they fit."""

    def __init__(self, settings, options):
        self.settings = settings
        requested = image_shape(options)
        files, classes, shapes = _checked_folder(settings.data, options)
        self.paths = files
        self.rows = len(files)
        if settings.val_data:
            val_files, val_classes, _ = _checked_folder(settings.val_data, options)
            self.train = (files, classes, shapes)
            self.validation = (val_files, val_classes)
        else:
            labels = np.unique(classes, return_inverse=True)[1]
            train_rows, val_rows = split_indices(
                len(files), settings.val_split, settings.seed, labels
            )
            check_split(settings, len(files), len(train_rows), len(val_rows))
            self.train = (
                [files[i] for i in train_rows],
                [classes[i] for i in train_rows],
                shapes[train_rows],
            )
            self.validation = None
            if len(val_rows):
                self.validation = ([files[i] for i in val_rows], [classes[i] for i in val_rows])
        train_files, train_classes, train_shapes = self.train
        self.train_rows = len(train_files)
        self.validation_rows = len(self.validation[0]) if self.validation else 0
        self.class_names = class_names_from(
            np.asarray(train_classes, dtype=object), settings.data, "folder"
        )
        if self.validation:
            encode_labels(
                self.validation[1], self.class_names, settings.val_data or settings.data, "folder"
            )
        height, width = requested or default_image_shape(train_shapes[:, :2])
        gray = bool(np.all(train_shapes[:, 2] <= 2))
        self.layout = ImageLayout(
            height=height, width=width, channels=options.channels or (1 if gray else 3)
        )
        log.info(
            "Images become %dx%d pixels, %d channel(s).",
            self.layout.height,
            self.layout.width,
            self.layout.channels,
        )
        decoded_mb = (self.train_rows + self.validation_rows) * _pixel_bytes(self.layout) / 2**20
        self.cached = decoded_mb <= settings.stream_above_mb
        how = "decoding them once into memory"
        if not self.cached:
            limit = settings.stream_above_mb
            how = f"decoding them batch by batch (above --stream-above-mb {limit})"
        log.info("Decoded images take %.0f MB: %s.", decoded_mb, how)

    @property
    def adapt_examples(self):
        return self.sample_examples()

    def sample_examples(self, rows=64):
        files, classes, _ = self.train
        return image_examples(files[:rows], classes[:rows], self.settings.data)

    def metric_examples(self):
        found = {"train": self._metric_sample(*self.train[:2])}
        if self.validation:
            found["validation"] = self._metric_sample(*self.validation)
        return found

    def _metric_sample(self, files, classes):
        # The sample's encoded bytes are held in memory while scoring.
        rows = metric_rows(len(files), self.settings.seed)
        return image_examples(
            [files[i] for i in rows], [classes[i] for i in rows], self.settings.data
        )

    def datasets(self, order, batch_size, workers=1, worker_index=0, length_of=None):
        # Images of one size have no length to group them by; `length_of` is not used.
        files, classes, _ = self.train
        train = self._pipeline(files, classes, order.batches(len(files), batch_size))
        validation = None
        if self.validation:
            files, classes = self.validation
            validation = self._pipeline(files, classes, in_order(len(files), batch_size))
        return train, validation

    def _pipeline(self, files, classes, batches):
        import tensorflow as tf

        from keras_bigmodel.layers import decode_and_resize

        layout = self.layout
        paths = tf.constant([str(p) for p in files], tf.string)
        labels = tf.constant(encode_labels(classes, self.class_names, self.settings.data, "folder"))
        shape = [layout.height, layout.width, layout.channels]

        def decode(path):
            content = tf.io.read_file(path)
            return decode_and_resize(content, layout.channels, layout.height, layout.width)

        if self.cached:
            # Decode every image once, in parallel: each batch then only gathers its rows.
            decoded = tf.data.Dataset.from_tensor_slices(paths).map(
                decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            )
            pixels = tf.concat(list(decoded.batch(DECODE_BATCH)), axis=0)

            def gather(rows):
                return {"pixels": tf.gather(pixels, rows)}, tf.gather(labels, rows)

        else:

            def gather(rows):
                batch = tf.map_fn(
                    decode,
                    tf.gather(paths, rows),
                    fn_output_signature=tf.TensorSpec(shape, tf.float32),
                )
                return {"pixels": batch}, tf.gather(labels, rows)

        # Batches decode in parallel, and stay in order.
        dataset = batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return with_shard_policy(dataset.prefetch(tf.data.AUTOTUNE), by_file=False)

    def describe(self):
        val_paths = None
        if self.settings.val_data:
            val_paths = self.validation[0]
        described = describe(
            self.settings, self.paths, self.rows, self.train_rows, self.validation_rows, val_paths
        )
        described["cached"] = self.cached
        return described


def _checked_folder(folder, options):
    listed = images.list_image_folder(folder, with_classes=True)
    kept, shapes = check_images(listed.files, folder, options.skip_unreadable)
    return [listed.files[i] for i in kept], [listed.classes[i] for i in kept], shapes


def _pixel_bytes(layout):
    return layout.height * layout.width * layout.channels * 4


def image_shape(options):
    """Returns `(height, width)` from `--image-size`, or `None` when it is not given.

    Raises:
        UserError: the size is not `N` or `HxW`, or `--channels` is not 1 or 3.
    """
    if options.channels not in (None, 1, 3):
        raise UserError(f"--channels must be 1 or 3; got {options.channels}.")
    if options.image_size is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(options.image_size))
    if not match or int(match[1]) < 1 or int(match[2] or match[1]) < 1:
        raise UserError(
            f"--image-size must be N (square) or HxW, such as 64 or 48x64; "
            f"got '{options.image_size}'."
        )
    return int(match[1]), int(match[2] or match[1])


def default_image_shape(sizes):
    """Chooses the size images are resized to when `--image-size` is not given.

    The median height and width of the training images, scaled as a whole (keeping its
    shape): a shorter side under `SMALLEST_DEFAULT_SIDE` pixels is scaled up to
    `ENLARGED_SIDE`, which gives small images room for the convolutions, and a longer side
    over `LARGEST_DEFAULT_SIDE` down to it, which keeps photos affordable.

    Args:
        sizes: `(height, width)` of each training image.

    Returns:
        `(height, width)`.
    """
    height, width = np.median(np.asarray(sizes), axis=0) if len(sizes) else (64, 64)
    scale = ENLARGED_SIDE / min(height, width) if min(height, width) < SMALLEST_DEFAULT_SIDE else 1
    scale = min(scale, LARGEST_DEFAULT_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


READER = ImageFolderReader()
