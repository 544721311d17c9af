"""PyTorch's beginner programs ("Learning PyTorch with Examples"), with only the import changed.

    python examples/pytorch_examples.py                 # all three, as the tutorial runs them
    python examples/pytorch_examples.py --only legendre --steps 500
    python examples/pytorch_examples.py --torch         # the same text run by torch itself

1. `polynomial`: y = sin(x) fitted by a third-order polynomial, the model
   `nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))`, `nn.MSELoss(reduction='sum')` and
   `optim.RMSprop`.
2. `legendre`: the same fit through a custom `autograd.Function`, the Legendre polynomial
   P3(x) = 1/2 (5x^3 - 3x), with its hand-written backward.
3. `dynamic`: a network that reuses its middle layer a random number of times
   (`random.randint(0, 3)`) in every forward pass, trained with SGD and momentum.

The functions below are the tutorial's code, the module imported as `torch`; `--torch`
runs this file's text again with that one line changed to `import torch`.
"""

from __future__ import annotations

import math
import random
import sys

from _cli import parser as make_parser
from _cli import positive_int

import ember as torch


def polynomial(steps: int = 2000, every: int = 100) -> None:
    # Create Tensors to hold input and outputs.
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)

    # Prepare the input tensor (x, x^2, x^3).
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 1),
        torch.nn.Flatten(0, 1)
    )
    loss_fn = torch.nn.MSELoss(reduction='sum')

    learning_rate = 1e-3
    optimizer = torch.optim.RMSprop(model.parameters(), lr=learning_rate)
    for t in range(steps):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        if t % every == every - 1:
            print(t, loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    linear_layer = model[0]
    print(f'Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x '
          f'+ {linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3')


class LegendrePolynomial3(torch.autograd.Function):
    """We can implement our own custom autograd Functions by subclassing
    torch.autograd.Function and implementing the forward and backward passes
    which operate on Tensors.
    """

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


def legendre(steps: int = 2000, every: int = 100) -> None:
    dtype = torch.float
    device = torch.device("cpu")

    x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = torch.sin(x)

    # Weights; a and d are chosen near the solution so that the fit converges.
    a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
    c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)

    learning_rate = 5e-6
    for t in range(steps):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        if t % every == every - 1:
            print(t, loss.item())
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None

    print(f'Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)')


class DynamicNet(torch.nn.Module):
    def __init__(self, D_in, H, D_out):
        """Three nn.Linear modules; the middle one is reused in forward."""
        super().__init__()
        self.input_linear = torch.nn.Linear(D_in, H)
        self.middle_linear = torch.nn.Linear(H, H)
        self.output_linear = torch.nn.Linear(H, D_out)

    def forward(self, x):
        """Reuse the middle layer 0 to 3 times, chosen at random in every pass: ordinary
        Python control flow builds a new graph each time, and the same Module is used
        several times in one graph.
        """
        h_relu = self.input_linear(x).clamp(min=0)
        for _ in range(random.randint(0, 3)):
            h_relu = self.middle_linear(h_relu).clamp(min=0)
        y_pred = self.output_linear(h_relu)
        return y_pred


def dynamic(steps: int = 500, every: int = 100) -> None:
    # N is batch size; D_in is input dimension; H is hidden dimension; D_out is output dimension.
    N, D_in, H, D_out = 64, 1000, 100, 10

    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)

    model = DynamicNet(D_in, H, D_out)

    # Training this strange model with vanilla SGD is hard, so we use momentum.
    criterion = torch.nn.MSELoss(reduction='sum')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    for t in range(steps):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        if t % every == every - 1:
            print(t, loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


PROGRAMS = {"polynomial": polynomial, "legendre": legendre, "dynamic": dynamic}


def run_with_torch(argv: list[str]) -> None:
    """Run this file's text again with its one import line changed to PyTorch."""
    source = open(__file__, encoding="utf-8").read()
    source = source.replace("\nimport ember as torch\n", "\nimport torch\n", 1)
    sys.argv = [__file__, *argv]
    exec(compile(source, __file__, "exec"), {"__name__": "__main__", "__file__": __file__})


def main() -> None:
    ap = make_parser(__doc__)
    ap.add_argument("--only", choices=sorted(PROGRAMS), default=None,
                    help="run one program (default: all three)")
    ap.add_argument("--steps", type=positive_int, default=None,
                    help="training steps of every program (default: the tutorial's, "
                         "2000 for the fits and 500 for the dynamic net)")
    ap.add_argument("--every", type=positive_int, default=100,
                    help="print the loss every N steps")
    ap.add_argument("--seed", type=int, default=0, help="random seed (random and the library)")
    ap.add_argument("--torch", action="store_true",
                    help="run the same code with PyTorch instead of ember")
    args = ap.parse_args()
    if args.torch and torch.__name__ != "torch":
        try:
            import torch as _  # noqa: F401
        except ImportError:
            ap.error("--torch: torch is not installed")
        return run_with_torch(sys.argv[1:])
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    for name, program in PROGRAMS.items():
        if args.only in (None, name):
            print(f"== {name} ({torch.__name__})")
            kwargs = {"every": args.every} | ({"steps": args.steps} if args.steps else {})
            program(**kwargs)


if __name__ == "__main__":
    main()
