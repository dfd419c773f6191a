"""Trains the CNN on handwritten digits from Python, then evaluates, exports and serves it.

python examples/train_cnn.py demo/digits

writes the digits into demo/digits/{train,test}/<digit>/ first if they are not there
(see make_digits.py), trains on train/, evaluates on the held-out test/, exports a
SavedModel and classifies one PNG file's bytes with it, as TensorFlow Serving would.
"""

import argparse
from pathlib import Path

import tensorflow as tf
from make_digits import write_digits

import keras_bigmodel as kb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("digits", help="folder with train/ and test/ digit folders")
    parser.add_argument("--out", default="demo/runs/cnn", help="run directory")
    parser.add_argument("--export", default="demo/exports/digits", help="export folder")
    args = parser.parse_args()

    digits = Path(args.digits)
    if not (digits / "train").is_dir():
        write_digits(digits, test=0.2)

    # Every option of `bigmodel train cnn` is a keyword here, with `_` for `-`.
    result = kb.train("cnn", data=digits / "train", out=args.out, overwrite=True, quiet=True)
    accuracy = result.metrics["validation"]["accuracy"]
    print(f"trained {result.run_dir}: validation accuracy {accuracy:.4f}")

    # The test images were never seen in training; eval reads them as it read train/.
    metrics = kb.evaluate(result.run_dir, digits / "test")
    print(f"held-out accuracy {metrics['accuracy']:.4f} on {metrics['num_examples']} images")

    # The export takes encoded image bytes, as a client would send them.
    version = kb.export(result.run_dir, args.export)
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    image = sorted((digits / "test" / "7").glob("*.png"))[0]
    outputs = serve(image_bytes=tf.constant([image.read_bytes()]))
    print(f"{image}: the export says {outputs['label'][0].numpy().decode()}")


if __name__ == "__main__":
    main()
