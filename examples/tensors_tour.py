"""A tour of ember's tensors: creation, data sets, operations, indexing, views, broadcasting.

Run it with `python examples/tensors_tour.py`. Every tensor is lazy: operations build
a graph, and values are computed when printed (or realised). The same code runs
eagerly with EMBER_EAGER=1.
"""

import numpy as np
from _cli import parser as make_parser

import ember as em

make_parser(__doc__).parse_args()  # --help says what the tour shows


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 66 - len(title)))


def show(label: str, value) -> None:
    text = repr(value)
    if "\n" in text:
        print(f"{label}:\n{text}")
    else:
        print(f"{label}: {text}")


section("Tensors from values")
show("em.tensor(3.5)", em.tensor(3.5))
show("em.tensor([1, 2, 3])", em.tensor([1, 2, 3]))
m = em.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
show("a 2x3 matrix", m)
print("shape", m.shape, "| dtype", m.dtype, "| ndim", m.ndim, "| numel", m.numel())
show("from a NumPy int32 array", em.tensor(np.array([7, 8, 9], dtype=np.int32)))
show("booleans", em.tensor([True, False, True]))
try:
    em.tensor([[1, 2], [3]])
except ValueError as e:
    print("ragged list ->", type(e).__name__ + ":", e)
try:
    em.tensor(["a", "b"])
except TypeError as e:
    print("strings ->", type(e).__name__ + ":", e)

section("Tensors from a spec")
show("em.zeros(2, 3)", em.zeros(2, 3))
show("em.ones(2, dtype=em.int64)", em.ones(2, dtype=em.int64))
show("em.full((2, 2), 7.0)", em.full((2, 2), 7.0))
show("em.eye(3)", em.eye(3))
show("em.arange(0, 10, 3)", em.arange(0, 10, 3))
show("em.linspace(0, 1, 5)", em.linspace(0, 1, 5))
em.manual_seed(0)
first = em.rand(2, 3)
show("em.rand(2, 3) after manual_seed(0)", first)
em.manual_seed(0)
print("the same seed gives the same numbers:", first.tolist() == em.rand(2, 3).tolist())
show("em.randn(3)", em.randn(3))
show("em.randint(0, 10, (5,))", em.randint(0, 10, (5,)))

section("A data set: a quarterly series")
quarters = np.array(["2023-01-01", "2023-04-01", "2023-07-01", "2023-10-01", "2024-01-01",
                     "2024-04-01", "2024-07-01", "2024-10-01"], dtype="datetime64[D]")
sales = em.tensor([120.5, 131.0, 128.25, 150.0, 141.5, 155.0, float("nan"), 171.25])
days = em.tensor(quarters)
show("quarter starts as days since 1970-01-01 (int64)", days)
show("sales (one quarter missing: NaN is kept)", sales)
show("isnan", sales.isnan())
show("mean ignoring NaN", em.nanmean(sales))
by_year = sales.view(2, 4)
show("sales by year (a 2x4 view of the same data)", by_year)
show("yearly totals ignoring NaN", em.nansum(by_year, dim=1))
show("growth quarter to quarter", sales[1:] - sales[:-1])

section("A data set: a table with a categorical column")
cities = ["Oslo", "Lima", "Oslo", "Pune", "Lima", "Oslo"]
codes_of = {name: i for i, name in enumerate(sorted(set(cities)))}
print("categories -> codes:", codes_of)
city = em.tensor([codes_of[c] for c in cities])
temperature = em.tensor([3.5, 18.0, -1.0, 31.5, 19.5, float("nan")])
show("city codes", city)
show("temperature", temperature)
for name, code in codes_of.items():
    rows = city == code
    print(f"  mean temperature in {name}: {em.nanmean(temperature[rows]).item():.2f}")

section("Operations")
x = em.tensor([1.0, 4.0, 9.0])
show("x", x)
show("x + 1", x + 1)
show("x * x", x * x)
show("sqrt(x)", x.sqrt())
show("exp(-x)", em.exp(-x))
show("x ** 0.5 == sqrt(x)", (x ** 0.5) == x.sqrt())
show("matrix @ matrix.T", m @ m.T)
show("int tensor / 2 (true division gives floats)", em.tensor([3, 4]) / 2)

section("Reductions over dims")
show("m", m)
show("m.sum()", m.sum())
show("m.sum(dim=0)", m.sum(dim=0))
show("m.mean(dim=1, keepdim=True)", m.mean(dim=1, keepdim=True))
show("m.max(dim=1)", m.max(dim=1))
show("m.argmax()", m.argmax())
show("m.var(dim=1)", m.var(dim=1))
show("m.softmax(dim=-1)", m.softmax(dim=-1))
show("em.quantile(sales with NaN, 0.5)", em.nanquantile(sales, 0.5))

section("Indexing")
a = em.arange(12).reshape(3, 4)
show("a", a)
show("a[1]", a[1])
show("a[:, 1]", a[:, 1])
show("a[-1, ::2]", a[-1, ::2])
show("a[..., None].shape", a[..., None].shape)
show("a[a > 6]  (boolean mask)", a[a > 6])
show("a[[0, 2]]  (integer list)", a[[0, 2]])
a[0, :] = 0
show("after a[0, :] = 0", a)

section("Views and strides")
base = em.arange(6, dtype=em.float32)
v = base.view(2, 3)
t = v.t()
print("base.data_ptr() == v.data_ptr() == t.data_ptr():",
      base.data_ptr() == v.data_ptr() == t.data_ptr())
print("v.stride() =", v.stride(), "| t.stride() =", t.stride(),
      "| t.is_contiguous() =", t.is_contiguous())
col = v[:, 1]
print("v[:, 1].storage_offset() =", col.storage_offset(), "| stride", col.stride())
col.mul_(100)
show("after v[:, 1].mul_(100), the base sees it", base)
try:
    t.view(6)
except RuntimeError as e:
    print("t.view(6) ->", e)
r = t.reshape(6)
print("t.reshape(6) copies instead:", r.tolist(), "| shares memory:",
      r.data_ptr() == base.data_ptr())

section("Broadcasting")
row = em.tensor([10.0, 20.0, 30.0])
col = em.tensor([[1.0], [2.0]])
show("row + col  (3,) with (2, 1) -> (2, 3)", row + col)
print("em.broadcast_shapes((2, 1), (3,)) =", em.broadcast_shapes((2, 1), (3,)))
try:
    em.ones(2, 3) + em.ones(4)
except RuntimeError as e:
    print("(2, 3) + (4,) ->", e)

print("\nDone.")
