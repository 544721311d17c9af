"""The `cnn_step` and `transformer_step` cases: one training step of a whole model.

The models are those of the examples (examples/cnn_digits.py, examples/char_transformer.py),
written once on `lib.nn` for torch and ember alike: a small CNN on 8x8 images (Conv2d,
BatchNorm2d, ReLU, MaxPool2d twice, Flatten, Linear; dropout left out so every library
computes the same numbers) and a GPT-style character transformer (Embeddings, causal
`scaled_dot_product_attention`, LayerNorm, tanh-GELU MLP). A step is forward,
cross-entropy, backward, `AdamW.step()` and `zero_grad()` on one fixed batch.

Contenders: ember (the step as written, lazy), ember compiled (`em.compile(step)`), torch
eager, and torch.compile (`torch.compile(model)`, the usual way: backward and the
optimizer stay eager; skipped under --quick, and reported unavailable where it cannot
compile here). The check compares the loss of the first step, computed from the same
weights, with NumPy's forward pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .contenders import Libraries, Runner, Unavailable, ember_to_tensor, torch_to_tensor

__all__ = ["CNN_CONTENDERS", "TRANSFORMER_CONTENDERS"]

LR = 1e-3
EPS = 1e-5
HEADS = 4  # attention heads of the transformer case


# ---- the models, on lib.nn ------------------------------------------------------------

def cnn_model(lib: Any, channels: int) -> Any:
    nn = lib.nn
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * c * 2 * 2, 10))


def transformer_model(lib: Any, vocab: int, context: int, dim: int, heads: int,
                      layers: int) -> Any:
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"),
                                     nn.Linear(4 * dim, dim))

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2)
                       for z in self.qkv(self.ln1(x)).split(d, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.mlp(self.ln2(x))

    class CharTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.token, self.position = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
            self.blocks = nn.Sequential(*[Block() for _ in range(layers)])
            self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

        def forward(self, codes):
            x = self.token(codes) + self.position.weight[:codes.shape[1]]
            return self.head(self.ln(self.blocks(x)))

    return CharTransformer()


# ---- inputs: a batch and every parameter, by its state_dict name -----------------------

def _uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    bound = 1 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def cnn_inputs(size: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    batch, c = size
    inputs = {"x": rng.uniform(0, 1, (batch, 1, 8, 8)).astype(np.float32),
              "y": rng.integers(0, 10, batch)}
    for name, c_in, c_out in (("0", 1, c), ("4", c, 2 * c)):
        inputs[f"{name}.weight"] = _uniform(rng, (c_out, c_in, 3, 3), 9 * c_in)
        inputs[f"{name}.bias"] = _uniform(rng, (c_out,), 9 * c_in)
    for name, n in (("1", c), ("5", 2 * c)):
        inputs[f"{name}.weight"] = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        inputs[f"{name}.bias"] = (0.1 * rng.standard_normal(n)).astype(np.float32)
    inputs["9.weight"] = _uniform(rng, (10, 8 * c), 8 * c)
    inputs["9.bias"] = _uniform(rng, (10,), 8 * c)
    return inputs


def transformer_inputs(size: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    batch, context, dim, layers, vocab = size
    inputs = {"x": rng.integers(0, vocab, (batch, context)),
              "y": rng.integers(0, vocab, (batch, context)),
              "token.weight": rng.standard_normal((vocab, dim)).astype(np.float32),
              "position.weight": rng.standard_normal((context, dim)).astype(np.float32)}
    linears = (("qkv", dim, 3 * dim), ("proj", dim, dim), ("mlp.0", dim, 4 * dim),
               ("mlp.2", 4 * dim, dim))
    for i in range(layers):
        for ln in ("ln1", "ln2"):
            inputs[f"blocks.{i}.{ln}.weight"] = np.ones(dim, np.float32)
            inputs[f"blocks.{i}.{ln}.bias"] = np.zeros(dim, np.float32)
        for name, n_in, n_out in linears:
            inputs[f"blocks.{i}.{name}.weight"] = _uniform(rng, (n_out, n_in), n_in)
            inputs[f"blocks.{i}.{name}.bias"] = _uniform(rng, (n_out,), n_in)
    inputs["ln.weight"], inputs["ln.bias"] = np.ones(dim, np.float32), np.zeros(dim, np.float32)
    inputs["head.weight"] = _uniform(rng, (vocab, dim), dim)
    inputs["head.bias"] = _uniform(rng, (vocab,), dim)
    return inputs


def cnn_flops(size: tuple[int, int]) -> tuple[str, float]:
    """Multiply-adds of both convolutions and the head, forward and backward (x3), x2."""
    batch, c = size
    forward = 64 * c * 9 + 16 * 2 * c * c * 9 + 8 * c * 10
    return "flops", 2.0 * 3 * batch * forward


def transformer_flops(size: tuple[int, ...]) -> tuple[str, float]:
    """6 flops per parameter and token (forward and backward) plus the attention scores."""
    batch, context, dim, layers, vocab = size
    params = layers * 12 * dim * dim + dim * vocab
    return "flops", 6.0 * batch * context * params + 6.0 * layers * batch * context ** 2 * dim


# ---- NumPy's forward pass: the loss of the first step ---------------------------------

def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def _conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", windows, w) + b[:, None, None]


def _batch_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * g[:, None, None] + b[:, None, None]


def _pool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def np_cnn_loss(x: np.ndarray, y: np.ndarray, *params: np.ndarray) -> np.ndarray:
    w0, b0, w4, b4, g1, s1, g5, s5, w9, b9 = params
    h = _pool2(np.maximum(_batch_norm(_conv3x3(x, w0, b0), g1, s1), 0))
    h = _pool2(np.maximum(_batch_norm(_conv3x3(h, w4, b4), g5, s5), 0))
    return np.array(_cross_entropy(h.reshape(len(x), -1) @ w9.T + b9, y))


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * g + b


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def np_transformer_loss(x: np.ndarray, y: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    token, position, *rest = arrays
    head_w, head_b = rest[-2:]
    ln_g, ln_b = rest[-4:-2]
    blocks = rest[:-4]
    h = token[x] + position[:x.shape[1]]
    b, t, d = h.shape
    causal = np.triu(np.full((t, t), -np.inf, np.float32), 1)
    for i in range(0, len(blocks), 12):
        g1, s1, g2, s2, wqkv, bqkv, wp, bp, w0, b0, w2, b2 = blocks[i:i + 12]
        qkv = _layer_norm(h, g1, s1) @ wqkv.T + bqkv
        q, k, v = (z.reshape(b, t, HEADS, d // HEADS).transpose(0, 2, 1, 3)
                   for z in np.split(qkv, 3, axis=2))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // HEADS) + causal
        att = np.exp(scores - scores.max(axis=-1, keepdims=True))
        att /= att.sum(axis=-1, keepdims=True)
        y_att = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        h = h + y_att @ wp.T + bp
        h = h + _gelu_tanh(_layer_norm(h, g2, s2) @ w0.T + b0) @ w2.T + b2
    logits = _layer_norm(h, ln_g, ln_b) @ head_w.T + head_b
    return np.array(_cross_entropy(logits.reshape(b * t, -1), y.reshape(-1)))


# ---- contenders -------------------------------------------------------------------------

def _params(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in inputs.items() if k not in ("x", "y")}


def _runner(lib: Any, build, inputs: dict[str, np.ndarray], to_tensor, compile_step=None,
            compile_model=None) -> Runner:
    """A model built by `build(lib)` loaded with the case's weights, its AdamW step."""
    def setup():
        model = build(lib)
        weights = {k: to_tensor(v.copy()) for k, v in _params(inputs).items()}
        model.load_state_dict(weights, strict=False)
        forward = compile_model(model) if compile_model else model
        opt = lib.optim.AdamW(model.parameters(), lr=LR)
        loss_fn = lib.nn.CrossEntropyLoss()

        def step(x, y):
            logits = forward(x)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss.detach()
        return compile_step(step) if compile_step else step

    x, y = to_tensor(inputs["x"]), to_tensor(inputs["y"])
    step = setup()
    if compile_model:
        # NOTE: torch.compile's first calls (the forward's and then the backward's
        # compiles) took seconds each here, the fifth 2 ms: not the step's own cost.
        for _ in range(5):
            float(step(x, y))

    def result() -> list[np.ndarray]:
        return [np.array(float(setup()(x, y)), dtype=np.float64)]

    return Runner(lambda: float(step(x, y)), result)


def _contenders(build_for):
    """The four contenders of a model case; `build_for(inputs)` -> build(lib) -> model."""
    def ember(compiled: bool):
        def contender(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
            em = libs.em
            if em is None:
                raise Unavailable(f"ember cannot be imported: {libs.em_error}")
            if not hasattr(em.nn, "Conv2d") and case.name == "cnn_step":
                raise Unavailable("ember has no nn.Conv2d / nn.MaxPool2d yet")
            return _runner(em, build_for(inputs), inputs,
                           lambda a: ember_to_tensor(libs, a, False),
                           compile_step=em.compile if compiled else None)
        return contender

    def torch(compiled: bool):
        def contender(case: Any, inputs: dict[str, np.ndarray], libs: Libraries) -> Runner:
            if libs.torch is None:
                raise Unavailable(f"torch cannot be imported: {libs.torch_error}")
            if compiled and libs.quick:
                raise Unavailable("skipped under --quick (torch.compile takes minutes)")
            return _runner(libs.torch, build_for(inputs), inputs,
                           lambda a: torch_to_tensor(libs, a, False),
                           compile_model=libs.torch.compile if compiled else None)
        return contender

    return {"ember": ember(False), "ember compiled": ember(True),
            "torch eager": torch(False), "torch.compile": torch(True)}


def _cnn_build(inputs: dict[str, np.ndarray]):
    channels = inputs["0.weight"].shape[0]
    return lambda lib: cnn_model(lib, channels)


def _transformer_build(inputs: dict[str, np.ndarray]):
    vocab, dim = inputs["token.weight"].shape
    context = inputs["position.weight"].shape[0]
    layers = sum(1 for k in inputs if k.endswith(".ln1.weight"))
    return lambda lib: transformer_model(lib, vocab, context, dim, HEADS, layers)


CNN_CONTENDERS = _contenders(_cnn_build)
TRANSFORMER_CONTENDERS = _contenders(_transformer_build)
