"""bigmodel's default cnn, written by hand in Keras: the same network, optimizer and
schedule on the same folder, with the pipeline a user would write.

    python benchmarks/peers/keras_cnn.py TRAIN_FOLDER TEST_FOLDER --size 28 --epochs 10

`keras.utils.image_dataset_from_directory` decodes and resizes the folder (grayscale,
`--size` pixels a side, as bigmodel chooses for the folder: 28 for MNIST's digits, 32 for
the 8x8 digits), keeps a tenth for
validation, caches the decoded images in memory and prefetches; then the network of
`keras_bigmodel/models/cnn.py` with its defaults (random shift, turn, zoom and contrast;
three blocks of two 3x3 convolutions, 16, 32 and 64 filters, with batch normalisation;
dropout 0.3), Adam at 2e-3 with a cosine decay over the run, batch 64. Prints one JSON
line: test accuracy and each epoch's training seconds.
"""

import argparse
import json

import keras
from keras_lstm import EpochTimes


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def folders(args):
    """Returns `(train, validation, test, classes, train_rows)` datasets of the folders."""
    import tensorflow as tf

    common = {
        "image_size": (args.size, args.size),
        "color_mode": "grayscale",
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    train, validation = keras.utils.image_dataset_from_directory(
        args.train, validation_split=0.1, subset="both", **common
    )
    test = keras.utils.image_dataset_from_directory(args.test, shuffle=False, **common)
    classes = train.class_names
    rows = sum(int(tf.shape(y)[0]) for _, y in train)
    train = train.cache().prefetch(tf.data.AUTOTUNE)
    return train, validation.cache().prefetch(tf.data.AUTOTUNE), test, classes, rows


def network(args, classes):
    inputs = keras.Input(shape=(args.size, args.size, 1))
    x = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant")(inputs)
    x = keras.layers.RandomRotation(0.04, fill_mode="constant")(x)
    x = keras.layers.RandomZoom(0.1, fill_mode="constant")(x)
    x = keras.layers.RandomContrast(0.2)(x)
    x = keras.layers.Rescaling(1 / 255)(x)
    for filters in (16, 32, 64):
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(len(classes), activation="softmax")(x)
    return keras.Model(inputs, outputs)


def main():
    args = arguments()
    keras.utils.set_random_seed(args.seed)
    train, validation, test, classes, rows = folders(args)
    model = network(args, classes)
    steps = -(-rows // args.batch_size)
    rate = keras.optimizers.schedules.CosineDecay(2e-3, args.epochs * steps)
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fit_and_report(model, args, (train, validation, test), rows)


def fit_and_report(model, args, datasets, rows):
    """Fits a compiled model for `args.epochs`, then prints one JSON line: its accuracy on
    the test folder and each epoch's training seconds."""
    train, validation, test = datasets
    times = EpochTimes()
    model.fit(train, validation_data=validation, epochs=args.epochs, callbacks=[times], verbose=2)
    _, accuracy = model.evaluate(test, verbose=0)
    print(
        json.dumps({"accuracy": accuracy, "train_rows": rows, "epoch_train_seconds": times.times})
    )


if __name__ == "__main__":
    main()
