"""The plain Keras script a user would write for the seed's LSTM text classifier.

    python benchmarks/peers/keras_lstm.py TRAIN TEST --text-column SMS --label-column Label

keras.io style (its "Bidirectional LSTM on IMDB" example, one direction): a
`TextVectorization` layer adapted on the training texts, every text padded or cut to a
fixed length with `keras.utils.pad_sequences` (padding in front, so the LSTM's last state
follows the words), Embedding -> LSTM -> softmax, `fit` with a validation split, then
accuracy on the held-out table. Prints one JSON line: test accuracy and each
epoch's training seconds.
"""

import json
import time

import keras
from common import arguments, labelled_tables


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.times.append(time.perf_counter() - self.began)

    def on_train_begin(self, logs=None):
        self.times = []


def main():
    args = arguments(__doc__.splitlines()[0])
    keras.utils.set_random_seed(args.seed)

    train, test, classes, y_train, y_test = labelled_tables(args)

    vectorize = keras.layers.TextVectorization(max_tokens=args.max_tokens, ragged=True)
    vectorize.adapt(train[args.text_column].astype(str).to_numpy())

    def to_ids(frame):
        ids = vectorize(frame[args.text_column].astype(str).to_numpy()).to_list()
        return keras.utils.pad_sequences(ids, maxlen=args.max_length)

    x_train, x_test = to_ids(train), to_ids(test)

    model = keras.Sequential(
        [
            keras.Input(shape=(args.max_length,), dtype="int64"),
            keras.layers.Embedding(args.max_tokens, args.embedding_dim),
            keras.layers.LSTM(args.units),
            keras.layers.Dense(len(classes), activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    times = EpochTimes()
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_split=0.1,
        callbacks=[times],
        verbose=2,
    )
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    rows = len(x_train) - int(0.1 * len(x_train))
    print(
        json.dumps({"accuracy": accuracy, "train_rows": rows, "epoch_train_seconds": times.times})
    )


if __name__ == "__main__":
    main()
