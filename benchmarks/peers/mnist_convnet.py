"""keras.io's "Simple MNIST convnet" on an image folder: the time-to-accuracy reference.

    python benchmarks/peers/mnist_convnet.py TRAIN_FOLDER TEST_FOLDER --size 28

The example as published (Conv 32 -> pool -> Conv 64 -> pool -> dropout 0.5 -> softmax,
Adam, batch 128, 15 epochs, a tenth of the training images for validation), reading the
folder with `keras.utils.image_dataset_from_directory` at `--size` pixels a side, as
MNIST's 28. Prints one JSON line: test accuracy and each epoch's training seconds.
"""

import keras
from keras_cnn import arguments, fit_and_report, folders


def main():
    args = arguments()
    keras.utils.set_random_seed(args.seed)
    train, validation, test, classes, rows = folders(args)
    model = keras.Sequential(
        [
            keras.Input(shape=(args.size, args.size, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(len(classes), activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    fit_and_report(model, args, (train, validation, test), rows)


if __name__ == "__main__":
    main()
