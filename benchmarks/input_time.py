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
    # The remaining `--name value` pairs are `bigmodel train` options, as the CLI spells them.
    flags = {}
    for i, flag in enumerate(rest):
        if not flag.startswith("--"):
            continue
        name = flag[2:].replace("-", "_")
        value = rest[i + 1] if i + 1 < len(rest) else "--"
        if value.startswith("--"):  # a switch: --name or --no-name
            flags[name.removeprefix("no_")] = not name.startswith("no_")
        else:
            flags[name] = int(value) if value.isdigit() else value
    seconds, steps = pipeline_seconds(args.model, flags)
    print(json.dumps({"input_seconds_per_pass": seconds, "batches": steps}))


if __name__ == "__main__":
    main()
