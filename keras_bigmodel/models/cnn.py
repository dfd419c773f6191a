"""The CNN image classifier: decode, resize, augment, convolution blocks, a softmax layer."""

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keras_bigmodel.config import option
from keras_bigmodel.data.examples import Examples
from keras_bigmodel.errors import UserError
from keras_bigmodel.models.recipe import Recipe
from keras_bigmodel.models.registry import register

log = logging.getLogger(__name__)

#: the default image size keeps the longer side at most this many pixels.
LARGEST_DEFAULT_SIDE = 128
#: and scales small images up so the shorter side has at least this many.
SMALLEST_DEFAULT_SIDE = 32


@dataclass
class CNNOptions:
    """Options of the CNN image classifier."""

    image_size: str | None = option(
        None,
        "Resize every image to N x N or H x W pixels [default: the training images' median "
        f"size, scaled to at least {SMALLEST_DEFAULT_SIDE} pixels on the shorter side and at "
        f"most {LARGEST_DEFAULT_SIDE} on the longer].",
        metavar="N|HxW",
    )
    channels: int | None = option(
        None,
        "1 (grayscale) or 3 (colour) [default: 1 if every training image is grayscale].",
        minimum=1,
        maximum=3,
        metavar="1|3",
    )
    filters: tuple[int, ...] = option(
        (32, 64, 128),
        "Filters of each convolution block, comma-separated; each block halves the image.",
        minimum=1,
        metavar="N,N,...",
    )
    augment: bool = option(
        True, "Randomly shift, zoom, rotate and change the contrast of training images."
    )
    flip: str = option(
        "none",
        "Also flip training images at random; only where a mirror image keeps its class "
        "(not for digits or text).",
        choices=("none", "horizontal", "vertical", "both"),
    )
    dropout: float = option(0.3, "Dropout rate before the classifier.", minimum=0.0, below=1.0)
    skip_unreadable: bool = option(
        False, "Skip image files that do not decode, with a warning, instead of stopping."
    )


@dataclass
class ImagePreprocessing:
    """What every image becomes before the network: its size and number of channels."""

    height: int
    width: int
    channels: int


@register
class CNNImageClassifier(Recipe):
    """Decode and resize -> augment (training only) -> conv blocks -> dropout -> softmax."""

    name = "cnn"
    summary = "Image classifier: a convolutional network on a folder, one sub-folder per class."
    task = "classification"
    Options = CNNOptions
    # Size and channels are fixed inside the trained model; only which files to read is not.
    data_options = ("skip_unreadable",)
    # Measured on the 8x8 digits (examples/make_digits.py): a cosine decay over 30 epochs
    # ends better than stopping early on a noisy validation loss, and runs in ~70 s on 2
    # CPU cores. The patience still stops a run that has stopped improving.
    train_defaults = {"epochs": 30, "lr_schedule": "cosine", "early_stopping": 10}

    def read_examples(self, data, options, fmt=None, with_targets=True, nrows=None):
        from keras_bigmodel.data import images

        # Checked before the folder is scanned, which can take a while.
        image_shape(options)
        listed = images.list_image_folder(data, with_classes=with_targets)
        files = listed.files[:nrows]
        classes = None if listed.classes is None else listed.classes[:nrows]
        contents = images.read_contents(files)
        bad = images.find_undecodable(contents)
        if bad:
            bad_files = [files[i] for i in bad]
            if not options.skip_unreadable:
                raise UserError(
                    f"{data}: {len(bad)} file(s) do not decode as {images.IMAGE_KINDS} images: "
                    f"{images.named_files(bad_files)}; fix or remove them, or pass "
                    "--skip-unreadable to skip them."
                )
            log.warning(
                "Skipping %d file(s) that do not decode as images: %s",
                len(bad),
                images.named_files(bad_files),
            )
            kept = np.setdiff1d(np.arange(len(files)), bad)
            files, contents = [files[i] for i in kept], contents[kept]
            classes = None if classes is None else [classes[i] for i in kept]
            if not files:
                raise UserError(f"{data}: none of the images decode; nothing to read.")
        frame = pd.DataFrame({"path": [str(p) for p in files]})
        if classes is not None:
            frame["label"] = classes
        return Examples(
            inputs={"image_bytes": contents},
            targets=np.asarray(classes, dtype=object) if with_targets else None,
            frame=frame,
            source=str(data),
            paths=files,
            target_name="folder",
        )

    def fit_preprocessing(self, examples, options, seed):
        from keras_bigmodel.data.images import image_header, is_grayscale

        headers = [image_header(content) for content in examples.inputs["image_bytes"]]
        headers = [header for header in headers if header is not None]
        height, width = image_shape(options) or default_image_shape([(h, w) for h, w, _ in headers])
        gray = headers and all(is_grayscale(mode) for _, _, mode in headers)
        channels = options.channels or (1 if gray else 3)
        log.info("Images become %dx%d pixels, %d channel(s).", height, width, channels)
        return ImagePreprocessing(height=height, width=width, channels=channels)

    def network_dataset(self, examples, targets, preprocessing, options, batches):
        import tensorflow as tf

        from keras_bigmodel.layers import decode_and_resize

        size = (preprocessing.channels, preprocessing.height, preprocessing.width)
        # Decode every image once, in parallel, and keep the pixels in memory: each batch
        # then only gathers its rows.
        contents = tf.data.Dataset.from_tensor_slices(
            tf.constant(list(examples.inputs["image_bytes"]), dtype=tf.string)
        )
        decoded = contents.map(
            lambda content: decode_and_resize(content, *size),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        pixels = tf.concat(list(decoded.batch(1024)), axis=0)
        labels = tf.constant(targets)
        dataset = batches.map(
            lambda rows: (tf.gather(pixels, rows), tf.gather(labels, rows)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def build_network(self, preprocessing, options, num_outputs):
        import keras

        pixels = keras.Input(
            shape=(preprocessing.height, preprocessing.width, preprocessing.channels),
            name="pixels",
        )
        x = augmentation(options)(pixels) if options.augment else pixels
        x = keras.layers.Rescaling(1 / 255, name="rescaling")(x)
        for block, filters in enumerate(options.filters, start=1):
            for conv in (1, 2):
                name = f"block{block}_{conv}"
                x = keras.layers.Conv2D(
                    filters, 3, padding="same", use_bias=False, name=f"{name}_conv"
                )(x)
                # Averages that move faster than Keras' default (0.99) settle within the
                # few hundred steps a small data set trains for, so the statistics used at
                # inference belong to the weights kept.
                x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_norm")(x)
                x = keras.layers.ReLU(name=f"{name}_relu")(x)
            # "same" padding lets a small image pass through more blocks than it has halvings.
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
        x = keras.layers.GlobalAveragePooling2D(name="mean_over_positions")(x)
        x = keras.layers.Dropout(options.dropout, name="dropout")(x)
        probabilities = keras.layers.Dense(
            num_outputs, activation="softmax", dtype="float32", name="probabilities"
        )(x)
        return keras.Model(pixels, probabilities, name="cnn_classifier")

    def end_to_end(self, network, preprocessing, options):
        import keras

        from keras_bigmodel.layers import DecodeImages

        image_bytes = keras.Input(shape=(), dtype="string", name="image_bytes")
        pixels = DecodeImages(
            preprocessing.height,
            preprocessing.width,
            preprocessing.channels,
            dtype="float32",
            name="decode_images",
        )(image_bytes)
        probabilities = network(pixels)
        return keras.Model({"image_bytes": image_bytes}, probabilities, name="cnn_end_to_end")


def augmentation(options):
    """Returns the random changes made to training images; at inference they pass through.

    Each change is small enough to keep an image's class: a digit shifted, turned or
    zoomed a little is still that digit. Flips change what many images mean (a mirrored
    digit or letter), so they come only when asked for.
    """
    import keras

    layers = [
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
        keras.layers.RandomRotation(0.04, fill_mode="constant"),
        keras.layers.RandomZoom(0.1, fill_mode="constant"),
        keras.layers.RandomContrast(0.2),
    ]
    if options.flip != "none":
        mode = "horizontal_and_vertical" if options.flip == "both" else options.flip
        layers.insert(0, keras.layers.RandomFlip(mode))
    return keras.Sequential(layers, name="augmentation")


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
    shape) so that its longer side is at most `LARGEST_DEFAULT_SIDE` pixels, which keeps
    photos affordable, and its shorter side at least `SMALLEST_DEFAULT_SIDE`, which gives
    small images room for the convolutions.

    Args:
        sizes: `(height, width)` of each training image.

    Returns:
        `(height, width)`.
    """
    height, width = np.median(np.asarray(sizes), axis=0) if sizes else (64, 64)
    scale = max(SMALLEST_DEFAULT_SIDE / min(height, width), 1.0)
    scale = min(scale, LARGEST_DEFAULT_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))
