"""Train a small CNN on scikit-learn's 8x8 handwritten digits, its step compiled.

    python examples/cnn_digits.py                   # 10 epochs, then the test accuracy
    python examples/cnn_digits.py --epochs 3 --compare

Needs scikit-learn (`pip install ember[examples]`): its 1797 digits ship with it, nothing
is downloaded. A fixed, stratified fifth of them is held out as the test set. The model
is Conv2d-BatchNorm2d-ReLU-MaxPool2d twice, Dropout and a Linear head, trained with
`CrossEntropyLoss` and `AdamW` under `CosineAnnealingLR`; the training step (forward,
loss, backward, `opt.step()`, `opt.zero_grad()`) is one `em.compile`d function, and the
evaluation (the model in eval mode: BatchNorm's running statistics, no dropout) is
another. It reaches about 97-99% test accuracy. At the end it saves the weights with
`em.save`, loads them into a fresh model with `em.load` and checks the accuracy is the
same. The model code takes the library as an argument, so `--compare` runs it in torch.
"""

from __future__ import annotations

import os
import tempfile
import time
import types

import numpy as np
from _cli import parser as make_parser
from _cli import positive_float, positive_int

import ember as em


def load_digits(seed: int):
    """(train_x, train_y, test_x, test_y): images (n, 1, 8, 8) in [0, 1], labels int64."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("this example needs scikit-learn, which ships the digits: "
                         "pip install 'ember[examples]' (or pip install scikit-learn)") from None
    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    return train_test_split(images, labels, test_size=0.2, random_state=seed, stratify=labels)


def model_class(lib: types.ModuleType):
    """The CNN built on `lib.nn` (`lib` is ember or torch): the same code for both."""
    nn = lib.nn

    class DigitsCNN(nn.Module):
        def __init__(self, channels: int = 32, dropout: float = 0.25):
            super().__init__()
            c = channels
            self.features = nn.Sequential(
                nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                nn.MaxPool2d(2),                                         # 8x8 -> 4x4
                nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
                nn.MaxPool2d(2),                                         # 4x4 -> 2x2
            )
            self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                            nn.Linear(2 * c * 2 * 2, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    return DigitsCNN


def make_model(lib, args):
    lib.manual_seed(args.seed)
    return model_class(lib)(args.channels, args.dropout)


def make_step(lib, model, opt):
    """One training step: forward, cross-entropy, backward, the AdamW update."""
    loss_fn = lib.nn.CrossEntropyLoss()

    def step(x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.detach()
    return step


def make_predict(lib, model):
    """The predicted classes of a batch (the caller puts the model in eval mode)."""
    def predict(x):
        with lib.no_grad():
            return model(x).argmax(dim=1)
    return predict


def batches(x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator):
    """Shuffled batches of `size`; the last partial batch is dropped (one compiled shape)."""
    order = rng.permutation(len(x))
    for i in range(0, len(x) - size + 1, size):
        idx = order[i:i + size]
        yield x[idx], y[idx]


def accuracy(model, predict, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    predicted = predict(em.from_numpy(x)).numpy()
    model.train()
    return float((predicted == y).mean())


def train(args, data):
    """Train for --epochs; returns the model, its compiled prediction and the accuracy."""
    train_x, test_x, train_y, test_y = data
    model = make_model(em, args)
    opt = em.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    per_epoch = len(train_x) // args.batch
    total = min(args.steps or per_epoch * args.epochs, per_epoch * args.epochs)
    sched = em.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    step = em.compile(make_step(em, model, opt))
    predict = em.compile(make_predict(em, model))
    rng = np.random.default_rng(args.seed)
    done, start = 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        losses, epoch_start = [], time.perf_counter()
        for x, y in batches(train_x, train_y, args.batch, rng):
            losses.append(step(em.from_numpy(x), em.from_numpy(y)))
            sched.step()
            done += 1
            if done == total:
                break
        loss = float(em.stack(losses).mean())
        rate = len(losses) / (time.perf_counter() - epoch_start)
        acc = accuracy(model, predict, test_x, test_y)
        print(f"epoch {epoch:3d}  loss {loss:.4f}  test accuracy {acc:.2%}  "
              f"{rate:6.1f} steps/s  ({time.perf_counter() - start:5.1f} s)", flush=True)
        if done == total:
            break
    return model, predict, acc


def check_reload(args, model, data, acc: float) -> None:
    """Save the weights with em.save, load them into a fresh model: the same accuracy."""
    path = args.save or os.path.join(tempfile.mkdtemp(prefix="ember-cnn-"), "digits.npz")
    em.save(model.state_dict(), path)
    fresh = make_model(em, args)
    fresh.load_state_dict(em.load(path))
    again = accuracy(fresh, make_predict(em, fresh), data[1], data[3])
    print(f"saved the weights to {path}; reloaded: test accuracy {again:.2%}")
    if again != acc:
        raise SystemExit(f"the reloaded model's accuracy {again:.2%} is not {acc:.2%}")


def time_steps(step, x: np.ndarray, y: np.ndarray, batch: int, n: int, to_tensor) -> float:
    """Seconds per training step, after two warm-up steps."""
    rng = np.random.default_rng(1)
    data = [next(batches(x, y, batch, rng)) for _ in range(n + 2)]
    for bx, by in data[:2]:
        float(step(to_tensor(bx), to_tensor(by)))
    start = time.perf_counter()
    for bx, by in data[2:]:
        float(step(to_tensor(bx), to_tensor(by)))
    return (time.perf_counter() - start) / n


def compare(args, data) -> None:
    """Time compiled, uncompiled (lazy) and torch eager steps of the same model."""
    x, y, n = data[0], data[2], args.compare_steps
    print(f"timing {n} training steps each (batch {args.batch}):")
    times = {}
    for name in ("ember compiled", "ember lazy"):
        model = make_model(em, args)
        step = make_step(em, model, em.optim.AdamW(model.parameters(), lr=args.lr))
        step = em.compile(step) if name == "ember compiled" else step
        times[name] = time_steps(step, x, y, args.batch, n, em.from_numpy)
    try:
        import torch
    except ImportError:
        torch = None
        print("  torch is not installed: no torch timing")
    if torch is not None:
        model = make_model(torch, args)
        step = make_step(torch, model, torch.optim.AdamW(model.parameters(), lr=args.lr))
        times["torch eager"] = time_steps(step, x, y, args.batch, n, torch.from_numpy)
    for name, seconds in times.items():
        print(f"  {name:15s} {seconds * 1e3:8.2f} ms per step")
    if torch is not None:
        print(f"  compiled / torch eager = {times['ember compiled'] / times['torch eager']:.2f}x,"
              f" lazy / torch eager = {times['ember lazy'] / times['torch eager']:.2f}x")


def parse_args(argv=None):
    ap = make_parser(__doc__)
    ap.add_argument("--epochs", type=positive_int, default=10, help="passes over the training set")
    ap.add_argument("--steps", type=positive_int, default=None,
                    help="stop after this many steps (default: every step of --epochs)")
    ap.add_argument("--batch", type=positive_int, default=64, help="images per step")
    ap.add_argument("--channels", type=positive_int, default=32,
                    help="channels of the first convolution (the second has twice as many)")
    ap.add_argument("--dropout", type=float, default=0.25, help="dropout before the head")
    ap.add_argument("--lr", type=positive_float, default=3e-3, help="AdamW's peak learning rate")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights, split and batches")
    ap.add_argument("--save", default=None,
                    help="where em.save writes the weights (default: a temporary folder)")
    ap.add_argument("--compare", action="store_true",
                    help="also time compiled, uncompiled and torch eager steps")
    ap.add_argument("--compare-steps", type=positive_int, default=20,
                    help="steps timed per contender by --compare")
    args = ap.parse_args(argv)
    if not 0 <= args.dropout < 1:
        ap.error(f"argument --dropout: must be in [0, 1), got {args.dropout}")
    if args.batch > 1437:
        ap.error(f"argument --batch: the training set has 1437 images, got {args.batch}")
    if args.save and not os.path.isdir(os.path.dirname(os.path.abspath(args.save))):
        ap.error(f"argument --save: the folder {os.path.dirname(args.save)} does not exist")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    data = load_digits(args.seed)
    print(f"digits: {len(data[0])} training and {len(data[1])} test images of 8x8; "
          f"batch {args.batch}, AdamW lr {args.lr} with a cosine schedule")
    model, predict, acc = train(args, data)
    print(f"test accuracy {acc:.2%}")
    check_reload(args, model, data, acc)
    if args.compare:
        compare(args, data)


if __name__ == "__main__":
    main()
