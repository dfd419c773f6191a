"""The kinds of input, and the options each takes, without the readers themselves.

`bigmodel --help` and the option parser need only what a reader accepts; the readers
(`text_table.py`, `feature_table.py`, `image_folder.py`) import pandas and TensorFlow, and
are imported only when data is read (`keras_bigmodel.data.reader.get_reader`).
"""

from dataclasses import dataclass

from keras_bigmodel.config import option

#: StringLookup's own token for values outside a vocabulary: the feature table reader
#: never keeps it as a category, and the linear model's lookup uses it for unseen values.
OOV_TOKEN = "[UNK]"
#: the default image size keeps the longer side at most this many pixels.
LARGEST_DEFAULT_SIDE = 128
#: images whose shorter side is at least this many pixels keep their size: the default
#: cnn's third block then works on maps of 7 pixels or more. MNIST's 28x28 digits were
#: enlarged to 32x32; at 28 the whole command takes 12% less time for the same test
#: accuracy (98.58% against 98.65% over seeds 1-4, 3,600 digits).
SMALLEST_DEFAULT_SIDE = 28
#: a smaller image is scaled up so its shorter side has this many, which gives it room for
#: the convolutions: scikit-learn's 8x8 digits reach 98.89% at 32 (seed 42, 359 test
#: digits) and 98.78% on average over eight seeds at 28 against 98.57% at 32.
ENLARGED_SIDE = 32


@dataclass
class TextTableOptions:
    """Which columns of a table hold the text and the label."""

    text_column: str = option("text", "Column holding the text.")
    label_column: str = option("label", "Column holding the class label (string or integer).")


@dataclass
class FeatureTableOptions:
    """Which columns of a table are the target and the features."""

    target: str | None = option(
        None, "Numeric column to predict (required for training).", metavar="COLUMN"
    )
    features: str | None = option(
        None,
        "Feature columns, comma-separated [default: every column but the target].",
        metavar="A,B,...",
    )
    categorical: str | None = option(
        None,
        "Feature columns to one-hot as categories, comma-separated [default: those holding text].",
        metavar="A,B,...",
    )
    max_categories: int = option(
        1000,
        "Most frequent values of each categorical column kept as categories; rarer ones "
        "count as unseen.",
        minimum=1,
    )


@dataclass
class ImageFolderOptions:
    """How an image folder's images become pixels, and what to do with broken files."""

    image_size: str | None = option(
        None,
        "Resize every image to N x N or H x W pixels [default: the training images' median "
        f"size; a shorter side under {SMALLEST_DEFAULT_SIDE} pixels is scaled up to "
        f"{ENLARGED_SIDE}, a longer side over {LARGEST_DEFAULT_SIDE} down to it].",
        metavar="N|HxW",
    )
    channels: int | None = option(
        None,
        "1 (grayscale) or 3 (colour) [default: 1 if every training image is grayscale].",
        minimum=1,
        maximum=3,
        metavar="1|3",
    )
    skip_unreadable: bool = option(
        False, "Skip image files that do not decode, with a warning, instead of stopping."
    )


@dataclass(frozen=True)
class Kind:
    """What a kind of input accepts.

    Attributes:
        module: the module of its reader (whose `READER` it is).
        options: the dataclass of its options.
        data_options: the options `eval` and `predict` may override: where the data is,
            not what it is.
        input_option, target_option: the flags naming the input and target columns, for
            messages.
    """

    module: str
    options: type
    data_options: tuple = ()
    input_option: str = "--data"
    target_option: str = "--data"


KINDS = {
    "text_table": Kind(
        "keras_bigmodel.data.text_table",
        TextTableOptions,
        data_options=("text_column", "label_column"),
        input_option="--text-column",
        target_option="--label-column",
    ),
    "feature_table": Kind(
        "keras_bigmodel.data.feature_table",
        FeatureTableOptions,
        # Which columns are features, and of what kind, is fixed by the run's layout.
        data_options=("target",),
        input_option="--features",
        target_option="--target",
    ),
    "image_folder": Kind(
        "keras_bigmodel.data.image_folder",
        ImageFolderOptions,
        # Size and channels are fixed inside the trained model; only which files to read
        # is not.
        data_options=("skip_unreadable",),
    ),
}
