"""One synaptic layer, described once: geometry, weights, the map it computes and what it counts.

A :class:`Synapse` maps an input ``x`` of shape (N, *in_shape) to ``y`` of shape (N, *out_shape),
without bias:

    dense    y = W x.flatten()                               W: (out, in)
    conv     y = conv(sumpool_k(x), W; stride, padding, groups)   W: (C_out, C_in / groups, *K)

``conv`` is torch's cross-correlation; ``sumpool_k`` sums non-overlapping k-blocks (kernel k,
stride k, a remainder that does not fill a block is dropped) and is the identity when ``pool``
is empty. An ``AvgPool(k)`` followed by a stride-1 ``Conv(W)`` is the synapse with pool k and
kernel W / prod(k) (the average is the sum over prod(k) inputs), in float and, after
quantisation, in integers: the pool is data on the synapse, never hidden in a larger kernel.

Hardware that cannot pool runs the equivalent pool-free convolution (:meth:`Synapse.pool_folded`):

    W'[c, d, k*t + i] = W[c, d, t]  for 0 <= i < k (per spatial axis),  stride k*s,  padding k*p

since y[j] = sum_t W[t] sum_i x[k(s j - p + t) + i] = sum_u W'[u] x[k s j - k p + u]. The pool's
padding positions are then the input's, except where the pool dropped a remainder (an input
length not a multiple of k): a padded window would read it, so a synapse with a pool, padding
and such a remainder is refused (the stage builder maps that case as a dense matrix). Lava's
Conv receives that kernel; the operation counts of the "hardware" view (and the resource report)
are those of the folded synapse, which is what a neuromorphic core stores and computes.

Shapes are per sample and timestep: dense (features,), conv1d (C, L), conv2d (C, H, W).
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, InitVar, dataclass, replace
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("dense", "conv1d", "conv2d")
SPATIAL_DIMS = {"dense": 0, "conv1d": 1, "conv2d": 2}
# Integers of magnitude below 2^24 are exact in float32 (24-bit significand): a synaptic sum whose
# every partial sum stays below this is computed exactly in float32, else in float64 (below 2^53).
FLOAT32_EXACT = 2**24


def sum_pool(x: torch.Tensor, k: tuple[int, ...]) -> torch.Tensor:
    """Sum over non-overlapping k-blocks of the trailing ``len(k)`` axes of ``x`` (N, C, *spatial):
    out[..., j] = sum_{i < k} x[..., k j + i]; a remainder shorter than k is dropped. Exact for
    integer-valued input while the block sums are exact in x's dtype."""
    if len(k) == 2:
        return F.avg_pool2d(x, k, stride=k, divisor_override=1)
    # 1-D: the same kernel over a unit height (avg_pool1d has no divisor_override)
    y = F.avg_pool2d(x.unsqueeze(-2), (1, k[0]), stride=(1, k[0]), divisor_override=1)
    return y.squeeze(-2)


@dataclass(frozen=True, eq=False, repr=False)
class Synapse:
    """One synaptic map (module docstring). ``weight`` is float (a float stage) or integer (an
    integer program's layer); ``stride``, ``padding`` and ``pool`` have one entry per spatial
    axis of a convolution and are empty for a dense map. ``where`` (not stored) names the layer
    in the errors of an inconsistent geometry, e.g. ``where="layer body.3"``."""

    kind: str
    weight: np.ndarray
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    groups: int = 1
    pool: tuple[int, ...] = ()
    _: KW_ONLY
    where: InitVar[str] = ""

    def __post_init__(self, where: str) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("weight", np.asarray(self.weight))
        for name in ("in_shape", "out_shape", "stride", "padding", "pool"):
            put(name, tuple(int(v) for v in getattr(self, name)))
        put("groups", int(self.groups))
        self._check(where or f"{self.kind} synapse")

    def _check(self, where: str) -> None:
        """Refuse an inconsistent geometry, naming the layer (``where``) and the field."""
        if self.kind not in KINDS:
            raise ValueError(f"{where}: synapse kind {self.kind!r}; expected one of {KINDS}")
        w = self.weight
        if w.dtype.kind == "f" and not np.isfinite(w).all():
            raise ValueError(f"{where}: weight has NaN or infinite entries")
        dims = SPATIAL_DIMS[self.kind]
        if self.kind == "dense":
            if w.ndim != 2 or w.shape != (math.prod(self.out_shape), math.prod(self.in_shape)):
                raise ValueError(
                    f"{where}: dense weight {w.shape} does not map input {self.in_shape} "
                    f"to output {self.out_shape}"
                )
            if self.stride or self.padding or self.pool or self.groups != 1:
                raise ValueError(f"{where}: a dense synapse has no stride, padding, pool or groups")
            return
        if w.ndim != 2 + dims or len(self.in_shape) != 1 + dims or len(self.out_shape) != 1 + dims:
            raise ValueError(
                f"{where}: {self.kind} weight {w.shape}, input {self.in_shape} and output "
                f"{self.out_shape} need {dims} spatial axes"
            )
        if len(self.stride) != dims or len(self.padding) != dims or len(self.pool) not in (0, dims):
            raise ValueError(
                f"{where}: stride {self.stride}, padding {self.padding} and pool {self.pool} "
                f"need one entry per spatial axis ({dims})"
            )
        if (
            self.groups < 1
            or self.in_shape[0] != w.shape[1] * self.groups
            or w.shape[0] % self.groups
        ):
            raise ValueError(
                f"{where}: {self.kind} weight {w.shape} with groups {self.groups} does not "
                f"fit {self.in_shape[0]} input channels"
            )
        if (
            self.pool
            and any(self.padding)
            and any(n % k for n, k in zip(self.in_shape[1:], self.pool))
        ):
            raise ValueError(
                f"{where}: pool {self.pool} leaves a remainder of input {self.in_shape} that the "
                f"padding {self.padding} of the pool-folded convolution would read"
            )
        pooled = (
            [n // k for n, k in zip(self.in_shape[1:], self.pool)]
            if self.pool
            else self.in_shape[1:]
        )
        expect = (
            w.shape[0],
            *[
                (n + 2 * p - kk) // s + 1
                for n, p, kk, s in zip(pooled, self.padding, w.shape[2:], self.stride)
            ],
        )
        if tuple(expect) != self.out_shape or min(expect) < 1:
            raise ValueError(
                f"{where}: output {self.out_shape} does not follow from input {self.in_shape}, "
                f"pool {self.pool}, kernel {w.shape[2:]}, stride {self.stride} and padding "
                f"{self.padding} (expected {tuple(expect)})"
            )

    def __repr__(self) -> str:
        geometry = ", ".join(
            f"{k}={getattr(self, k)}"
            for k in ("in_shape", "out_shape", "stride", "padding", "groups", "pool")
        )
        return (
            f"Synapse({self.kind}, weight {self.weight.dtype}{list(self.weight.shape)}, {geometry})"
        )

    # --- the map ---------------------------------------------------------------------------------
    def apply(
        self, x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The map on ``x`` (N, *in_shape) -> (N, *out_shape) in x's dtype: pool, then the
        dense product or convolution (plus ``bias`` per output feature or channel when given).
        ``weight`` replaces this synapse's weights by a tensor of the same shape (already on x's
        device and dtype: prepared integer weights, a 0/1 pattern for counting)."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"{self.kind} synapse: input of shape {tuple(x.shape[1:])}, expected "
                f"(N, {', '.join(map(str, self.in_shape))})"
            )
        w = (
            weight
            if weight is not None
            else torch.as_tensor(self.weight, dtype=x.dtype, device=x.device)
        )
        if self.kind == "dense":
            y = x.flatten(1) @ w.T
            return y + bias if bias is not None else y
        if self.pool:
            x = sum_pool(x, self.pool)
        conv = F.conv2d if self.kind == "conv2d" else F.conv1d
        return conv(x, w, bias, stride=self.stride, padding=self.padding, groups=self.groups)

    @property
    def pool_size(self) -> int:
        """Inputs summed per pooled value: prod(pool) (1 without pooling)."""
        return math.prod(self.pool)

    def pool_folded(self) -> Synapse:
        """The equivalent synapse without pooling (module docstring): kernel repeated k-fold along
        each spatial axis, stride k*s, padding k*p. Itself when there is no pool."""
        return self._pool_folded

    @cached_property
    def _pool_folded(self) -> Synapse:
        if not self.pool:
            return self
        w = self.weight
        for axis, k in enumerate(self.pool):
            w = np.repeat(w, k, axis=2 + axis)
        return replace(
            self,
            weight=w,
            stride=tuple(k * s for k, s in zip(self.pool, self.stride)),
            padding=tuple(k * p for k, p in zip(self.pool, self.padding)),
            pool=(),
        )

    # --- counting (on the pool-folded synapse: what a neuromorphic core stores and computes) -----
    @property
    def neurons_out(self) -> int:
        """Output neurons: prod(out_shape)."""
        return math.prod(self.out_shape)

    @property
    def num_weights(self) -> int:
        """Weights of the folded synapse (a pooled kernel counts prod(pool) times)."""
        return int(self.weight.size) * self.pool_size

    @property
    def nonzero_weights(self) -> int:
        return int(np.count_nonzero(self.weight)) * self.pool_size

    @property
    def fan_in(self) -> int:
        """Inputs per output neuron: in features (dense) or C_in / groups * folded kernel size."""
        w = self.pool_folded().weight
        return int(w.shape[1]) if self.kind == "dense" else int(math.prod(w.shape[1:]))

    def _count(self, x: torch.Tensor, nonzero_only: bool) -> torch.Tensor:
        """The folded synapse on a 0/1 input with a 0/1 weight (1 where the weight is non-zero, or
        everywhere), no bias: output j counts the operations that reach neuron j. (N, *out)."""
        syn = self.pool_folded()
        if math.prod(syn.weight.shape[1:]) >= FLOAT32_EXACT:
            raise ValueError(
                f"{self.kind} synapse: weight of shape {syn.weight.shape}: fan-in too large "
                "to count"
            )
        # float32 is exact here: every partial sum is an integer <= fan-in < 2^24 (checked above)
        pattern = (syn.weight != 0) if nonzero_only else np.ones(syn.weight.shape, dtype=bool)
        w = torch.from_numpy(pattern).to(torch.float32)
        return syn.apply(x.to(torch.float32), weight=w).to(torch.float64)

    def _on_ones(self, nonzero_only: bool) -> torch.Tensor:
        return self._count(torch.ones((1, *self.in_shape), dtype=torch.float32), nonzero_only)

    def connections(self) -> int:
        """Synapses with a non-zero weight, counted per connection (a shared conv weight counts
        once per output position it serves): what a sparse synapse format would store
        (:mod:`neurodeploy.measure.resources` plans with the dense count, :meth:`dense_ops`)."""
        return int(self._on_ones(nonzero_only=True).sum())

    def dense_ops(self) -> int:
        """Every input times every weight, one sample and timestep (what the equivalent ANN does;
        also every (input, neuron) connection, convolutions unrolled, padding excluded)."""
        return int(self._on_ones(nonzero_only=False).sum())

    def max_fan_in(self) -> int:
        """Inputs that reach the busiest output neuron (for a convolution: the in-bounds taps at
        its busiest position times C_in / groups)."""
        return int(self._on_ones(nonzero_only=False).max())

    def ops(self, x: torch.Tensor) -> torch.Tensor:
        """Effective operations per row of ``x`` (N, *in_shape): (N,) float64 (exact integers):
        the (non-zero input, non-zero weight) pairs of the folded synapse."""
        nz = (x != 0).to(torch.float32)
        return self._count(nz, nonzero_only=True).flatten(1).sum(1)


def conv_synapse(
    module: torch.nn.Conv1d | torch.nn.Conv2d,
    weight: np.ndarray,
    *,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    name: str,
    pool: tuple[int, ...] = (),
) -> Synapse:
    """The synapse of a torch ``Conv1d``/``Conv2d`` with ``weight`` (its own, or folded) fed
    ``in_shape`` (sum-pooled by ``pool`` first, when given); refuses what a synapse cannot
    express (string padding, dilation, padding modes other than zeros), naming the layer
    ``name``."""
    if isinstance(module.padding, str):
        raise ValueError(f"layer {name}: string padding {module.padding!r} is not supported")
    if any(d != 1 for d in module.dilation):
        raise ValueError(f"layer {name}: dilation {tuple(module.dilation)} is not supported")
    if module.padding_mode != "zeros":
        raise ValueError(
            f"layer {name}: padding_mode {module.padding_mode!r} is not supported (zeros only)"
        )
    kind = "conv2d" if isinstance(module, torch.nn.Conv2d) else "conv1d"
    return Synapse(
        kind,
        weight,
        in_shape,
        out_shape,
        tuple(module.stride),
        tuple(module.padding),
        int(module.groups),
        pool,
        where=f"layer {name}",
    )


class HoldsSynapse:
    """A layer that holds one :class:`Synapse` (a float :class:`~neurodeploy.quant.stages.Stage`,
    an integer :class:`~neurodeploy.quant.program.IntLayer`): its kind and shapes read through
    to the synapse, so that the geometry has one home."""

    synapse: Synapse

    @property
    def kind(self) -> str:
        return self.synapse.kind

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.synapse.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.synapse.out_shape
