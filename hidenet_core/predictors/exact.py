"""The learned predictor evaluated exactly: the same bits on every machine (format version 8).

A float32 convolution sums its products in an order its kernel chooses (oneDNN, MKL: AVX2 or
AVX-512, Intel or AMD paths), and the sum's last bits follow the order. The codec snaps means
and scales to a grid of 1/64, but a value within a rounding of a grid boundary snaps the other
way on another CPU, and the decoder then reads a payload that no longer matches its
predictions: streams of versions 1 to 7 with a learned model decode only on machines whose
kernels agree with the encoder's (docs/format.md, "Streams and machines").

``ExactModel`` runs a ``CNNP``'s weights so that every **reduction is exact**: each
convolution sees integer inputs and integer weights whose products and partial sums stay below
2^24, where float32 holds every integer, so any order of summation gives the same sum (the
weights are held times their step, a power of two, which scales every sum exactly). Between
the convolutions only element-wise IEEE operations (multiply, add, round, clamp, select) run,
each correctly rounded the same way everywhere; the inputs' 3x3 mean is a sum of integers over
9 and their logarithm a table (``features.step_inputs(exact=True)``), the conditioning bias a
``math.fsum`` per step, and the output scale's exponential another table. This is the integer
network of Ballé, Johnston and Minnen ("Integer networks for data compression with
latent-variable models", ICLR 2019), post-training: the float weights, quantized per
convolution to the finest power of two that keeps the bound.

* inputs: multiples of 1/64 (in the network's units: half a pixel of a difference over 32),
  clamped to +-8 (every input's range: pixel differences over 32, logarithms of scales);
* activations: multiples of 1/64, clamped to +-64 (the default model's reach 38 on a sample);
* weights: integers times 2^-b, b per convolution the largest with
  ``2^b * max_o sum |w[o]| * in_max < 2^23``.
"""

from __future__ import annotations

import math
import weakref
from functools import lru_cache

import torch
import torch.nn.functional as F

from .base import SCALE_MAX, SCALE_MIN, Prediction, Predictor
from .features import COND_CHANNELS, MEAN_GAIN, StepInputs, step_inputs
from .interp import coding_steps
from .learned import LearnedPredictor, views_forward

__all__ = ["ExactModel", "exact_model", "for_version", "has_exact", "EXP_GRID"]

#: inputs and activations are multiples of 2^-_UNIT_BITS
_UNIT_BITS = 6
_UNIT = float(1 << _UNIT_BITS)
_IN_MAX = 8.0  # |input| (network units)
_ACT_MAX = 64.0  # |activation| (the default model reaches 38 on the samples)
#: every product and partial sum of a convolution stays below this (float32 holds integers to 2^24)
_LIMIT = float(1 << 23)
#: the output's log-scale correction is rounded to 1/EXP_GRID and exponentiated by a table
EXP_GRID = 256
_EXP_SPAN = 16  # corrections clamped to +-16 (exp(16) is beyond any scale's range anyway)


def _quantized(weight: torch.Tensor, in_max: float) -> tuple[torch.Tensor, float]:
    """(integer weights as float32, 2^-b) for inputs of at most ``in_max`` in integer units: b the
    largest with 2^b * in_max * (largest L1 norm of an output's weights) <= 2^23. The norm is an
    exact sum (``math.fsum`` of the float32 weights) and b its float's exponent, so that no
    machine picks another b; rounding each weight adds at most in_max / 2 a tap, which keeps
    every partial sum below 2^24 for the shipped model's sizes (39 x 25 taps at most)."""
    w = weight.detach().double()
    l1 = max(math.fsum(row) for row in w.abs().flatten(1).tolist())
    b = math.frexp(_LIMIT / (in_max * max(l1, 1e-12)))[1] - 1
    return torch.round(w * 2.0**b).float(), 2.0**-b


def _scaled(weights: torch.Tensor, step: float, by: float = 1.0) -> torch.Tensor:
    """Integer weights times their step (and ``by``), powers of two: exact in float32."""
    return weights * (step * by)


@lru_cache(maxsize=1)
def _check_exact_convolutions() -> None:
    """Refuse version 8 where torch's float32 convolution is not exact on integers (a bfloat16 or
    TF32 math mode, an approximate algorithm): its streams would decode nowhere else. A known
    answer, computed in integers, for inputs and weights as large as the exact path gives them."""
    g = torch.Generator().manual_seed(8)
    x = torch.randint(-512, 513, (1, 39, 9, 11), generator=g).float()
    w = torch.randint(-150, 151, (16, 39, 5, 5), generator=g).float()
    got = F.conv2d(x.contiguous(memory_format=torch.channels_last), w, None, padding=2)
    columns = F.unfold(x, 5, padding=2)[0].long()  # (39 * 25, 9 * 11): the same sums in int64
    want = (w.view(16, -1).long() @ columns).view(got.shape)
    if not torch.equal(got.round().long(), want) or not torch.equal(got, got.round()):
        raise RuntimeError("this machine's torch does not compute float32 convolutions of integers exactly "
                           "(a bfloat16 or TF32 math mode?): it cannot write or read format version 8 streams; "
                           "unset the mode (e.g. ONEDNN_DEFAULT_FPMATH_MODE) or write --format-version 7")


@lru_cache(maxsize=1)
def _exp_table() -> torch.Tensor:
    """float32 ``exp(i / EXP_GRID)`` for i in -_EXP_SPAN * EXP_GRID .. +; a test pins its checksum."""
    n = _EXP_SPAN * EXP_GRID
    return torch.tensor([math.exp(i / EXP_GRID) for i in range(-n, n + 1)], dtype=torch.float64).float()


class ExactModel(Predictor):
    """A ``CNNP``'s weights evaluated exactly (module docstring): the predictor a version-8 stream
    is coded with. Same name, weights hash, steps and receptive field as the model."""

    takes_memo = True
    distribution = "laplace"

    def __init__(self, model: LearnedPredictor) -> None:
        super().__init__()
        if not has_exact(model):
            raise ValueError(f"model {model.name!r} has no exact evaluation, which format version 8 needs (a CNNP "
                             f"without level conditioning has one); write version 7 (--format-version 7), whose "
                             f"float32 streams decode only on machines with the same CPU kernels")
        _check_exact_convolutions()  # once per process
        # nothing of the model is kept but copies: the cache of exact models holds it weakly
        heads, blocks = model.heads, model.blocks
        self._hash = model.weights_hash()
        self._cond_w = model.cond.weight.detach().double().clone()
        self._cond_b = model.cond.bias.detach().double().clone()
        self.name = model.name
        self.context_rows = model.context_rows
        unit_in = _IN_MAX * _UNIT
        unit_act = _ACT_MAX * _UNIT
        # each convolution's integer weights times its step 2^-b (and the last one's over 64): a power of
        # two scales every product and partial sum exactly, so a convolution gives its integer sum
        # times the step at once, bit for bit, with no pass over its output to scale it
        self._heads = [(_scaled(*_quantized(h.weight, unit_in)), h.padding) for h in heads]
        self._blocks = [(_scaled(*_quantized(b.conv1.weight, unit_act)), _scaled(*_quantized(b.conv2.weight, unit_act)))
                        for b in blocks]
        self._head = _scaled(*_quantized(model.head.weight, unit_act), 1.0 / _UNIT)
        # the blocks' biases in units of 1/64 (``_trunk``)
        self._bias1 = [b.conv1.bias.detach().float().view(1, -1, 1, 1) * _UNIT for b in blocks]
        self._bias2 = [b.conv2.bias.detach().float().view(1, -1, 1, 1) * _UNIT for b in blocks]
        self._head_bias = model.head.bias.detach().float().view(1, -1, 1, 1)
        self._heads_bias = [h.bias.detach().double() for h in heads]
        self.slope = float(model.cfg.slope)
        self._cond_bias: dict[bytes, torch.Tensor] = {}
        self._live_heads: dict[tuple[int, ...] | None, list] = {None: self._heads}

    def weights_hash(self) -> bytes:
        return self._hash

    def steps(self, channels: int) -> tuple[tuple[int, ...], ...]:
        return coding_steps(channels)

    def forward(self, even: torch.Tensor, odd: torch.Tensor, step: int, level: int,
                memo: dict | None = None) -> Prediction:
        return views_forward(even, odd, step, level, memo, _exact_inputs, self._predict)

    # -- the evaluation ---------------------------------------------------------------------------

    def _bias(self, cond: torch.Tensor) -> torch.Tensor:
        """The conditioning bias plus the heads' biases (1, F, 1, 1), each an exactly rounded sum."""
        key = cond[0].numpy().tobytes()
        bias = self._cond_bias.get(key)
        if bias is None:
            w, b = self._cond_w, self._cond_b
            c = cond[0].double()
            terms = [[float(b[o])] + [float(w[o, j] * c[j]) for j in range(COND_CHANNELS)]
                     + [float(hb[o]) for hb in self._heads_bias] for o in range(w.shape[0])]
            bias = torch.tensor([math.fsum(t) for t in terms], dtype=torch.float64).float().view(1, -1, 1, 1)
            self._cond_bias[key] = bias
        return bias

    def _act(self, y: torch.Tensor) -> torch.Tensor:
        """LeakyReLU of pre-activations in units of 1/64, then onto the activations' grid and range
        (integers in those units): in place."""
        y = F.leaky_relu(y, self.slope, inplace=True)  # y, or y * slope (one multiply) below 0
        return y.round_().clamp_(-_ACT_MAX * _UNIT, _ACT_MAX * _UNIT)

    def _heads_for(self, live: tuple[int, ...] | None) -> list:
        """The input convolutions restricted to the input channels ``live`` (the others hold +-0)."""
        heads = self._live_heads.get(live)
        if heads is None:
            heads = self._live_heads[live] = [(w[:, list(live)].contiguous(), padding) for w, padding in self._heads]
        return heads

    def _trunk(self, x: torch.Tensor, bias: torch.Tensor, live: tuple[int, ...] | None = None) -> torch.Tensor:
        """Integer activations (B, F, h, w) in units of 1/64 from the inputs: all 39 channels (B, 39,
        h, w), or with ``live`` those channels alone (``step_inputs(exact=True)``, channels-last).

        The input convolutions run on the channels ``live`` only: the others are +-0, whose products
        add nothing to a sum that is exact anyway, so the sums are the same (a third to a half of
        the inputs' multiplications, which are two thirds of the network's).

        Everything runs in units of 1/64 (activations as the integers they are, sums and biases
        times 64). A power of two scales a float's rounding with it, so each operation gives 64
        times what it gives in real units, bit for bit: the same network as in real units (the
        inputs' and activations' grids are what format version 8 specifies), with no pass over
        the activations to convert between the two."""
        if live is None:
            xq = x.mul(_UNIT).contiguous(memory_format=torch.channels_last)
        elif x.shape[1] == len(live):  # the inputs' own tensor, used up here
            xq = x.mul_(_UNIT)
        else:
            raise ValueError(f"inputs of {x.shape[1]} channels for {len(live)} live ones")
        xq = xq.round_().clamp_(-_IN_MAX * _UNIT, _IN_MAX * _UNIT)
        total = None
        for w, padding in self._heads_for(live):
            part = F.conv2d(xq, w, None, padding=padding)  # an exact sum (integers times the step)
            total = part if total is None else total.add_(part)  # each part exact: their sum rounds once
        a = self._act(total.add_(bias.mul(_UNIT)))
        for (w1, w2), b1, b2 in zip(self._blocks, self._bias1, self._bias2):
            h = self._act(F.conv2d(a, w1, None, padding=1).add_(b1))
            a = self._act(F.conv2d(h, w2, None, padding=1).add_(b2).add_(a))
        return a

    def _predict(self, inputs: StepInputs, level: torch.Tensor,
                 keep: tuple[int, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``LearnedPredictor._predict`` evaluated exactly."""
        a = self._trunk(inputs.x, self._bias(inputs.cond), inputs.live)
        out = F.conv2d(a, self._head).add_(self._head_bias)  # (B, 18, h, w), real units
        means, scales = (slice(0, 9), slice(9, 18)) if keep is None else (list(keep), [9 + k for k in keep])
        own = slice(None) if keep is None else list(keep)
        mean = inputs.mean[:, own] + MEAN_GAIN * out[:, means]
        n = _EXP_SPAN * EXP_GRID
        key = out[:, scales].mul(float(EXP_GRID)).round_().clamp_(-n, n).long().add_(n)
        scale = (inputs.scale[:, own].clamp_min(SCALE_MIN) * _exp_table()[key]).clamp_(SCALE_MIN, SCALE_MAX)
        return mean, scale, a.mul_(1.0 / _UNIT)  # the context in real units (exact: a power of two)


def _exact_inputs(even, odd, rgb_step, memo):
    return step_inputs(even, odd, rgb_step, memo, exact=True)


#: each model's exact evaluation (weak: a model dropped is dropped here)
_EXACT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def exact_model(model: Predictor) -> Predictor:
    """The exact evaluation of a learned model (made once per model and weights: a model changed in
    place gets a new one); ``interp`` and other models whose arithmetic is already exact as they are."""
    if not isinstance(model, LearnedPredictor):
        return model
    found = _EXACT.get(model)
    if found is None or found.weights_hash() != model.weights_hash():
        found = _EXACT[model] = ExactModel(model)
    return found


def for_version(model: Predictor, exact_network: bool) -> Predictor:
    """The model as a format version evaluates it: exactly where the version's record says
    ``exact_network`` (version 8), else as it is."""
    return exact_model(model) if exact_network else model


def has_exact(model: Predictor) -> bool:
    """Whether ``model`` can write format version 8 (``interp``, or a CNNP without level conditioning)."""
    if not isinstance(model, LearnedPredictor):
        return True
    return hasattr(model, "heads") and hasattr(model, "blocks") and getattr(model, "level", None) is None
