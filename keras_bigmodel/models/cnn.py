"""The CNN image classifier: decode, resize, augment, convolution blocks, a softmax layer."""

from dataclasses import dataclass

from keras_bigmodel.config import option
from keras_bigmodel.graph import plain
from keras_bigmodel.models.recipe import Recipe, softmax_output
from keras_bigmodel.models.registry import register


@dataclass
class CNNOptions:
    """Options of the CNN image classifier."""

    filters: tuple[int, ...] = option(
        (16, 32, 64),
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


@register
class CNNImageClassifier(Recipe):
    """Decode and resize -> augment (training only) -> conv blocks -> dropout -> softmax."""

    name = "cnn"
    summary = "Image classifier: a convolutional network on a folder, one sub-folder per class."
    task = "classification"
    reader = "image_folder"
    Options = CNNOptions
    # Measured on 28x28 MNIST digits (benchmarks/make_mnist_folder.py, 3,600 for training)
    # and on the 8x8 digits (examples/make_digits.py), 2 CPU cores: filters 16,32,64 in
    # batches of 64 at 2e-3 reach the test accuracy of 32,64,128 in batches of 32 at 1e-3
    # (98.8% against 98.7% on MNIST, 99.16% on both for the 8x8 digits) in a third of the
    # time, the first block's full-size maps being most of the work. A cosine decay over 15
    # epochs ends better than stopping early on a noisy validation loss; the patience still
    # stops a run that has stopped improving.
    train_defaults = {
        "epochs": 15,
        "batch_size": 64,
        "learning_rate": 0.002,
        "lr_schedule": "cosine",
        "early_stopping": 10,
    }

    def fit_preprocessing(self, data, options, seed):
        # The reader chose the size and channels every image becomes (`ImageLayout`).
        return data.layout

    def network_dataset(self, batches, preprocessing, options):
        # Decoded and resized by the reader, in the pipeline; the network does the rest.
        return batches.map(plain(lambda inputs, labels: (inputs["pixels"], labels)))

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
        probabilities = softmax_output(x, options.dropout, num_outputs)
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

    def fast_network(self, model):
        # Each batch normalization folded into its convolution (keras_bigmodel/inference.py).
        from keras_bigmodel.inference import fast_cnn_classifier

        return fast_cnn_classifier(model.get_layer("cnn_classifier"))

    def serving_preprocessing(self, model):
        # The decoding layer has the layout's height, width and channels.
        return model.get_layer("decode_images")

    def portable_model(self, model, options):
        # TFLite and ONNX cannot decode images: the file takes decoded pixels of any size
        # and resizes them itself, as the end-to-end model does after decoding.
        import keras
        import tensorflow as tf

        from keras_bigmodel.layers import decode_pixels
        from keras_bigmodel.portable import PortableModel, ResizePixels

        network = model.get_layer("cnn_classifier")
        _, height, width, channels = network.input_shape
        pixels = keras.Input(shape=(None, None, channels), dtype="uint8", name="pixels")
        probabilities = network(ResizePixels(height, width, name="resize")(pixels))

        def prepare(examples):
            return [
                {"pixels": decode_pixels(content, channels).numpy()[None]}
                for content in examples.inputs["image_bytes"]
            ]

        return PortableModel(
            model=keras.Model(pixels, probabilities, name="cnn_pixels"),
            specs=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="pixels")],
            prepare=prepare,
            preprocessing={
                "input": "pixels",
                "dtype": "uint8",
                "shape": [-1, -1, -1, channels],
                "channels": channels,
                "colour": "grayscale" if channels == 1 else "RGB",
                "decode": (
                    "Decode the PNG, JPEG, GIF or BMP file to 8-bit pixels; convert colour "
                    "to grayscale as 0.2989 R + 0.5870 G + 0.1140 B (tf.image.rgb_to_grayscale)"
                    if channels == 1
                    else "Decode the PNG, JPEG, GIF or BMP file to 8-bit RGB pixels; "
                    "repeat a grayscale image's channel three times"
                ),
                "resize": (
                    f"inside the model: images of any size, one size per call, become "
                    f"{height}x{width} (bilinear, antialiased) and are scaled by the network"
                ),
                "height": height,
                "width": width,
            },
        )


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
