"""How long bigmodel's training input takes alone: one pass of training batches, no model.

    python benchmarks/input_time.py lstm --data train.tsv --text-column SMS ...

Builds the training pipeline exactly as `bigmodel train` does (reader, vocabulary, length
buckets, the recipe's network dataset, autotuning off), then times one pass of batches
after a warm-up pass. On 2 cores the pipeline's work is CPU taken from the training step
whether or not the step waits for it, so this time over the steady-state epoch is an upper
bound of the share of step time spent on input. Prints one JSON line.
"""

import argparse
import json
import time

from cli.main import explicit_options, train
from keras_bigmodel.data.order import TrainingOrder, batches_per_pass
from keras_bigmodel.models import get_recipe
from keras_bigmodel.training import quick_to_free, resolve_config


def pipeline_seconds(model, flags):
    """Seconds for one pass of `bigmodel train MODEL` training batches, and the batches."""
    recipe = get_recipe(model)
    resolved = resolve_config(model, **flags)
    settings, options = resolved.train, resolved.options
    data = recipe.data_reader.open_training(settings, options)
    preprocessing = recipe.fit_preprocessing(data, options, settings.seed)
    train, _ = data.datasets(
        TrainingOrder(settings.seed),
        settings.batch_size,
        length_of=recipe.length_of(preprocessing, options),
    )
    batches = quick_to_free(recipe.network_dataset(train, preprocessing, options))
    steps = batches_per_pass(data.train_rows, settings.batch_size)
    iterator = iter(batches)
    for _ in range(steps):  # warm-up: tracing, thread pools
        next(iterator)
    began = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return time.perf_counter() - began, steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    args, rest = parser.parse_known_args()
    # The rest are `bigmodel train MODEL` options, parsed by that very command.
    command = train.commands[args.model]
    context = command.make_context(args.model, rest)
    flags = explicit_options(context, context.params)
    seconds, steps = pipeline_seconds(args.model, flags)
    print(json.dumps({"input_seconds_per_pass": seconds, "batches": steps}))


if __name__ == "__main__":
    main()
