"""Measurements behind the paper's claims, on any trained :class:`SpikingNet`.

- :func:`initial_state_stats`: per LIF layer and timestep, mean and standard deviation of the
  membrane state each timestep *starts from* (``LIFTrace.start``: M(t-1) for the reset reading,
  U(t-1) for the charge reading; zero at t=1) -- the paper's Figure 1 quantity.
- :func:`gradient_flow`: per LIF layer and timestep, the L2 norm of dL/dI(t), the loss gradient
  reaching the layer's input current at timestep t (L = CE(mean_t z_t, y)). With
  ``last_only`` the loss is CE(z_T, y) of the last timestep alone, so everything that reaches
  t < T has travelled through the neurons' state across time: the temporal gradient path that
  MPS is meant to keep open past a detached reset.
- :func:`accuracy_by_timesteps`: accuracy when inference stops after the first t timesteps of
  the input the model was trained on (reduced-timestep inference).

Statistics are over the batch and all neurons of the layer; standard deviations are population
standard deviations (divide by N).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from neurodeploy.data import TaskData
from neurodeploy.nn.net import SpikingNet


@contextmanager
def _capture_lif_inputs(model: SpikingNet, retain_grad: bool = False):
    """Record the input (T, B, ...) of every LIF layer during forward passes in the block."""
    seen: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def pre(_m: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0]
            if retain_grad and x.requires_grad:
                x.retain_grad()
            seen[name] = x

        return pre

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in model.lif_layers()]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def run_recording_spikes(
    model: SpikingNet, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``model(x)`` and the spikes (T, B, ...) of every LIF layer, in order."""
    rec: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: rec.append(out)) for _, m in model.lif_layers()
    ]
    try:
        out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, rec


@torch.no_grad()
def initial_state_stats(model: SpikingNet, x: torch.Tensor) -> dict[str, dict[str, list[float]]]:
    """``{layer: {"mean": [T values], "std": [T values]}}`` of the state each timestep starts from."""
    was = model.training
    model.eval()
    try:
        with _capture_lif_inputs(model) as inputs:
            model(x)
        out = {}
        layers = dict(model.lif_layers())
        for name, inp in inputs.items():
            start = layers[name].trace(inp).start.flatten(1).double()  # (T, B * neurons)
            out[name] = {
                "mean": start.mean(1).tolist(),
                "std": start.std(1, unbiased=False).tolist(),
            }
        return out
    finally:
        model.train(was)


def gradient_flow(
    model: SpikingNet, x: torch.Tensor, y: torch.Tensor, last_only: bool = False
) -> dict[str, list[float]]:
    """``{layer: [||dL/dI(t)||_2 for t = 1..T]}``, L = CE(mean_t z_t, y) (or CE(z_T, y) with
    ``last_only``), in eval mode."""
    was = model.training
    model.eval()
    try:
        with _capture_lif_inputs(model, retain_grad=True) as inputs:
            z = model(x)
            loss = F.cross_entropy(z[-1] if last_only else z.mean(0), y)
            model.zero_grad(set_to_none=True)
            loss.backward()
        out = {}
        for name, inp in inputs.items():
            g = inp.grad if inp.grad is not None else torch.zeros_like(inp)
            out[name] = g.flatten(1).double().norm(dim=1).tolist()
        model.zero_grad(set_to_none=True)
        return out
    finally:
        model.train(was)


@torch.no_grad()
def accuracy_by_timesteps(
    model: SpikingNet, task: TaskData, *, T: int, steps: Iterable[int], batch_size: int = 256
) -> dict[int, float]:
    """Test accuracy using only the first t timesteps of the T-step input, for each t in steps."""
    steps = sorted({int(t) for t in steps})
    if not steps or steps[0] < 1 or steps[-1] > T:
        raise ValueError(f"steps must lie in 1..T={T}, got {steps}")
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = {t: 0 for t in steps}
    try:
        for i in range(0, len(task.y_test), batch_size):
            x = task.encode(task.x_test[i : i + batch_size], T).to(device)
            y = task.y_test[i : i + batch_size].to(device)
            z = model(x[: steps[-1]])  # causal: outputs up to t depend only on inputs up to t
            csum = z.cumsum(0)
            for t in steps:
                correct[t] += int((csum[t - 1].argmax(-1) == y).sum())
    finally:
        model.train(was)
    return {t: correct[t] / len(task.y_test) for t in steps}
