"""The seed's LSTM text classifier in PyTorch, on CPU, with packed sequences.

    benchmarks/.venv/bin/python benchmarks/peers/torch_lstm.py TRAIN TEST \
        --text-column SMS --label-column Label

Words are lower-cased with punctuation stripped (as Keras' default standardization), the
20,000 most frequent kept; each batch is padded to its longest text (at most 64 tokens)
and packed, so the LSTM reads no padding. Embedding -> LSTM -> linear layer on the last
hidden state, Adam, cross-entropy, a tenth of the rows held out for validation. Prints one
JSON line: test accuracy and each epoch's training seconds.
"""

import collections
import json
import re
import time

import numpy as np
import torch
from common import arguments, labelled_tables
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

PUNCTUATION = re.compile(r"[!\"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~']")


def tokens(text):
    return PUNCTUATION.sub("", text.lower()).split()


class LSTMClassifier(nn.Module):
    def __init__(self, vocabulary, embedding_dim, units, classes):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(embedding_dim, units, batch_first=True)
        self.out = nn.Linear(units, classes)

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(
            self.embedding(ids), lengths, batch_first=True, enforce_sorted=False
        )
        _, (hidden, _) = self.lstm(packed)
        return self.out(hidden[-1])


def batches(ids, labels, order, batch_size):
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        lengths = torch.tensor([max(len(ids[r]), 1) for r in rows])
        padded = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
        for i, r in enumerate(rows):
            padded[i, : len(ids[r])] = torch.tensor(ids[r], dtype=torch.long)
        yield padded, lengths, torch.as_tensor(labels[rows])


def accuracy(model, ids, labels, batch_size=256):
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, lengths, y in batches(ids, labels, np.arange(len(ids)), batch_size):
            correct += int((model(x, lengths).argmax(1) == y).sum())
    return correct / len(ids)


def main():
    args = arguments(__doc__.splitlines()[0])
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train, test, classes, labels, test_labels = labelled_tables(args)
    texts = [tokens(t) for t in train[args.text_column].astype(str)]
    counts = collections.Counter(word for text in texts for word in text)
    words = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(args.max_tokens - 2))}

    def encode(text):  # 0 pads, 1 is an unknown word; an empty text is one unknown word
        return [words.get(w, 1) for w in text[: args.max_length]] or [1]

    ids = [encode(t) for t in texts]
    test_ids = [encode(tokens(t)) for t in test[args.text_column].astype(str)]
    order = rng.permutation(len(ids))
    held = int(0.1 * len(ids))
    val_rows, train_rows = order[:held], order[held:]
    train_ids, train_labels = [ids[r] for r in train_rows], labels[train_rows]
    val_ids, val_labels = [ids[r] for r in val_rows], labels[val_rows]

    model = LSTMClassifier(len(words) + 2, args.embedding_dim, args.units, len(classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    times, input_times = [], []
    for epoch in range(args.epochs):
        began = time.perf_counter()
        model.train()
        loader = batches(train_ids, train_labels, rng.permutation(len(train_ids)), args.batch_size)
        input_times.append(0.0)
        while True:
            # Batches are built in this loop (no worker processes): the step waits for each.
            fetching = time.perf_counter()
            batch = next(loader, None)
            input_times[-1] += time.perf_counter() - fetching
            if batch is None:
                break
            x, lengths, y = batch
            optimizer.zero_grad()
            loss = loss_fn(model(x, lengths), y)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - began)
        print(
            f"epoch {epoch + 1}: {times[-1]:.2f} s, loss {loss.item():.4f}, "
            f"val_accuracy {accuracy(model, val_ids, val_labels):.4f}",
            flush=True,
        )
    result = {
        "accuracy": accuracy(model, test_ids, test_labels),
        "train_rows": len(train_ids),
        "epoch_train_seconds": times,
        "epoch_input_seconds": input_times,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
