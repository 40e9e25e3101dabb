"""Fuzzing the loaders of user files (issue 17): a NIR graph (ours and snnTorch's), an integer
program .npz (a chain and a version-3 graph program), a checkpoint .pt and a recipe .toml.

Each test writes a small valid file, then hypothesis applies random damage: truncations, bit
flips, byte insertions, and structural type swaps (in a program's JSON header: wrong types,
missing keys, huge shapes, negative sizes; in a NIR HDF5 file: datasets of the wrong dtype or
shape, or removed; in a checkpoint's payload and a recipe's values: other types). Every load must
either return a valid object or raise a ValueError subclass whose message names the file; any
other exception is a failure. Budget: ``NEURODEPLOY_FUZZ_EXAMPLES`` examples per test (default
30, a few seconds in all); ``benchmarks/fuzz_files.py`` runs a longer profile.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodeploy.converters.model_files import load_model_file
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntProgram
from neurodeploy.training.recipe import load_recipe

EXAMPLES = int(os.environ.get("NEURODEPLOY_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 30,  # the test command's run is reproducible; longer ones explore
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# values swapped in for a field: wrong types, huge and negative sizes, empty containers
SWAPS: tuple[Any, ...] = (
    None,
    "x",
    -1,
    0,
    2**40,
    -(2**40),
    1.5,
    float("nan"),
    True,
    [],
    {},
    [-3, 2],
    [2**31, 2**31],
    ["a", None],
    {"a": 1},
)

OK, NAMED = "loaded", "named error"


# --- the valid files ------------------------------------------------------------------------------
def write_our_nir(path: Path) -> Path:
    """Our exporter's graph of a small MLP (Linear -> LIF -> Linear -> LI readout)."""
    from neurodeploy.converters.nir_export import model_to_nir
    from neurodeploy.nn.zoo import build_model

    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, hidden=[4])
    nir.write(str(path), model_to_nir(model, extra_metadata={"task": "x", "T": 2}))
    return path


def write_snntorch_nir(path: Path) -> Path:
    """snnTorch's exporter: Flatten -> Linear -> Leaky -> Linear -> Leaky (output)."""
    from tests.test_foreign_e2e import write_snntorch_mlp

    write_snntorch_mlp(path, n_in=(1, 2, 3), n_out=3)
    return path


def write_chain_program(path: Path) -> Path:
    from tests.test_reference_graph import recurrent_loop

    return recurrent_loop().save(path)


def write_graph_program(path: Path) -> Path:
    """A version-3 graph program: fan-out from the input, fan-in with extra edges."""
    from tests.test_reference_graph import two_branches

    return two_branches().save(path)


def checkpoint_payload() -> dict[str, Any]:
    from neurodeploy.nn.zoo import build_model
    from neurodeploy.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
    from neurodeploy.training.config import TrainConfig

    cfg = TrainConfig(task="digits", model="mlp", T=2, arch={"hidden": [4]})
    torch.manual_seed(0)
    model = build_model("mlp", (8, 8), 10, cfg.neuron_config(), hidden=[4])
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": cfg.to_dict(),
        "model": model.state_dict(),
        "epoch": 1,
        "history": [{"epoch": 1, "test_acc": 0.5}],
        "input_shape": [8, 8],
        "num_classes": 10,
    }


def write_checkpoint(path: Path) -> Path:
    from neurodeploy.training.checkpoint import save_checkpoint

    payload = checkpoint_payload()
    payload.pop("format"), payload.pop("version")
    return save_checkpoint(payload, path)


RECIPE = """\
task = "digits"
model = "mlp"
T = 2
epochs = 1
batch_size = 16
optimizer = "sgd"
lr = 0.1
schedule = "cosine"

[arch]
hidden = [8]

[data]

[about]
purpose = "fuzz"
"""


def write_recipe(path: Path) -> Path:
    path.write_text(RECIPE)
    return path


# --- loading and judging --------------------------------------------------------------------------
def load_model_and_check(path: Path) -> None:
    """Load a model file; a loaded object must be usable: a model runs one step, a program's
    graph and shapes are consistent (its hardware ranges are a separate, named check)."""
    obj, _, _ = load_model_file(path)
    if isinstance(obj, SpikingNet):
        with torch.no_grad():
            obj(torch.zeros(1, 1, *obj.input_shape))
    else:
        assert isinstance(obj, IntProgram)
        obj.check_shapes()
        try:
            obj.validate()
        except ValueError as e:  # a program outside the hardware's ranges: named, not loaded
            raise ValueError(f"{path}: {e}") from e


def load_recipe_and_check(path: Path) -> None:
    load_recipe(path)


def outcome(load: Callable[[Path], None], path: Path) -> str:
    """OK, NAMED, or (a failure) the exception's type and message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load(path)
    except ValueError as e:
        if str(path) in str(e) or path.name in str(e):
            return NAMED
        return f"ValueError without the file name: {e}"
    except Exception as e:  # noqa: BLE001 - anything else is what the fuzz suite looks for
        return f"{type(e).__name__}: {str(e)[:300]}"
    return OK


# --- damage ---------------------------------------------------------------------------------------
@st.composite
def byte_damage(draw: st.DrawFn, n: int) -> list[tuple[str, int, int]]:
    """1-3 operations: ('truncate', at, 0), ('flip', byte, bit), ('insert', at, byte)."""
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "flip", "insert"]))
        at = draw(st.integers(0, max(n - 1, 0)))
        ops.append((kind, at, draw(st.integers(0, 255 if kind == "insert" else 7))))
    return ops


def damage_bytes(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, where, v in ops:
        at = min(where, max(len(b) - 1, 0))
        if kind == "truncate":
            del b[at:]
        elif kind == "flip" and b:
            b[at] ^= 1 << v
        elif kind == "insert":
            b[at:at] = bytes([v])
    return bytes(b)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON-like tree (dict keys, list indices)."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list) and len(obj) < 20:
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def swap_at(tree: Any, path: tuple[Any, ...], value: Any, *, delete: bool) -> None:
    parent = tree
    for k in path[:-1]:
        parent = parent[k]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(value)  # SWAPS' containers are shared


@st.composite
def tree_swaps(draw: st.DrawFn, tree: Any) -> list[tuple[tuple[Any, ...], Any, bool]]:
    """1-2 (path, value, delete) edits of a JSON-like tree."""
    paths = _paths(tree)
    return [
        (draw(st.sampled_from(paths)), draw(st.sampled_from(SWAPS)), draw(st.booleans()))
        for _ in range(draw(st.integers(1, 2)))
    ]


def apply_swaps(tree: Any, swaps: list[tuple[tuple[Any, ...], Any, bool]]) -> None:
    for path, value, delete in swaps:
        with contextlib.suppress(KeyError, IndexError, TypeError):  # an earlier swap removed it
            swap_at(tree, path, value, delete=delete)


# --- per format: the damaged file -----------------------------------------------------------------
@dataclass
class Format:
    name: str
    write: Callable[[Path], Path]
    suffix: str
    load: Callable[[Path], None]


FORMATS = {
    "nir-ours": Format("nir-ours", write_our_nir, ".nir", load_model_and_check),
    "nir-snntorch": Format("nir-snntorch", write_snntorch_nir, ".nir", load_model_and_check),
    "program-chain": Format("program-chain", write_chain_program, ".npz", load_model_and_check),
    "program-graph": Format("program-graph", write_graph_program, ".npz", load_model_and_check),
    "checkpoint": Format("checkpoint", write_checkpoint, ".pt", load_model_and_check),
    "recipe": Format("recipe", write_recipe, ".toml", load_recipe_and_check),
}


def valid_file(fmt: Format, folder: Path) -> Path:
    path = folder / f"valid_{fmt.name}{fmt.suffix}"
    if not path.exists():
        fmt.write(path)
    return path


def npz_structural(src: Path, dst: Path, draw: st.DrawFn) -> None:
    """Rewrite a program with its JSON header edited (and maybe one array of the wrong dtype or
    shape, or removed)."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays.pop("header")).decode())
    apply_swaps(header, draw(tree_swaps(header)))
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(arrays)))
        how = draw(st.sampled_from(["dtype", "shape", "drop", "empty"]))
        a = arrays[key]
        if how == "dtype":
            arrays[key] = a.astype(draw(st.sampled_from([np.float32, np.complex64, "U3", bool])))
        elif how == "shape":
            arrays[key] = np.zeros((*a.shape, 2), a.dtype)
        elif how == "empty":
            arrays[key] = np.zeros((0,), a.dtype)
        else:
            del arrays[key]
    text = json.dumps(header)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    np.savez(dst, header=np.frombuffer(text.encode(), np.uint8), **arrays)


def h5_structural(src: Path, dst: Path, draw: st.DrawFn) -> None:
    """Copy a NIR file with one or two datasets replaced by the wrong dtype or shape, or removed."""
    import h5py

    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for _ in range(draw(st.integers(1, 2))):
            live = [n for n in names if n in f]
            if not live:
                break
            name = draw(st.sampled_from(sorted(live)))
            a = f[name][()]
            del f[name]
            how = draw(st.sampled_from(["string", "float", "shape", "scalar", "drop", "empty"]))
            if how == "string":
                f[name] = "x"
            elif how == "float":
                f[name] = (
                    np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind in "iufb" else 1.5
                )
            elif how == "shape":
                f[name] = np.zeros((3, 2, 5))
            elif how == "scalar":
                f[name] = draw(st.sampled_from([-1, 0, 2**40, np.nan]))
            elif how == "empty":
                f[name] = np.zeros((0,))


def pt_structural(dst: Path, draw: st.DrawFn) -> None:
    payload = checkpoint_payload()
    plain = {k: v for k, v in payload.items() if k != "model"}
    apply_swaps(plain, draw(tree_swaps(plain)))
    if draw(st.booleans()):  # a weight of the wrong shape or dtype, or the model dropped
        state = payload["model"]
        key = draw(st.sampled_from(sorted(state)))
        how = draw(st.sampled_from(["shape", "dtype", "drop", "model"]))
        if how == "shape":
            state[key] = torch.zeros(3, 1, 2)
        elif how == "dtype":
            state[key] = state[key].to(torch.int64)
        elif how == "drop":
            del state[key]
        else:
            plain["model"] = draw(st.sampled_from(SWAPS))
    plain.setdefault("model", payload["model"])
    buf = io.BytesIO()
    torch.save(plain, buf)
    dst.write_bytes(buf.getvalue())


def recipe_structural(dst: Path, draw: st.DrawFn) -> None:
    """The recipe with values of other TOML types (or keys dropped), written back as TOML."""
    lines = RECIPE.splitlines()
    keyed = [i for i, ln in enumerate(lines) if "=" in ln]
    toml_values = [
        "-1",
        "0",
        "1.5",
        "nan",
        "inf",
        "true",
        '"x"',
        "[]",
        "[1, 2]",
        "{a = 1}",
        "2147483648000",
        '"digits"',
        "-5e-3",
    ]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.sampled_from(keyed))
        key = lines[i].split("=")[0].strip()
        lines[i] = (
            ""
            if draw(st.booleans()) and draw(st.booleans())
            else (f"{key} = {draw(st.sampled_from(toml_values))}")
        )
    dst.write_text("\n".join(lines) + "\n")


def damaged_file(fmt: Format, folder: Path, data: st.DataObject) -> Path:
    src = valid_file(fmt, folder)
    dst = folder / f"damaged{fmt.suffix}"
    if data.draw(st.booleans(), label="byte damage"):
        raw = src.read_bytes()
        dst.write_bytes(damage_bytes(raw, data.draw(byte_damage(len(raw)), label="ops")))
    elif fmt.suffix == ".npz":
        npz_structural(src, dst, data.draw)
    elif fmt.suffix == ".nir":
        h5_structural(src, dst, data.draw)
    elif fmt.suffix == ".pt":
        pt_structural(dst, data.draw)
    else:
        recipe_structural(dst, data.draw)
    return dst


# --- the tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_the_valid_file_loads(name: str, tmp_path: Path):
    fmt = FORMATS[name]
    assert outcome(fmt.load, valid_file(fmt, tmp_path)) == OK


@pytest.mark.parametrize("name", sorted(FORMATS))
@FUZZ
@given(data=st.data())
def test_damaged_file_loads_or_is_refused_by_name(name: str, data: st.DataObject, tmp_path: Path):
    fmt = FORMATS[name]
    path = damaged_file(fmt, tmp_path, data)
    got = outcome(fmt.load, path)
    assert got in (OK, NAMED), f"{name}: {got}"


# --- the failures the fuzzer found, as fixed examples ---------------------------------------------
def test_truncated_program_is_refused_by_name(tmp_path: Path):
    """Was EOFError (empty file) or zipfile.BadZipFile (cut in the middle)."""
    from neurodeploy.quant.program import ProgramFileError

    raw = write_graph_program(tmp_path / "g.npz").read_bytes()
    for n in (0, len(raw) // 2):
        (tmp_path / "cut.npz").write_bytes(raw[:n])
        with pytest.raises(ProgramFileError, match=r"cut\.npz: not a readable integer program"):
            IntProgram.load(tmp_path / "cut.npz")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h.pop("input_scale"), r"missing key\(s\) \['input_scale'\]"),  # was TypeError
        (lambda h: h["layers"][0].update(in_shape=2), r"layer 0 \(A\): 'in_shape' must be a list"),
        (lambda h: h["layers"][1].update(dv=float("nan")), r"'dv' must be an integer"),
        (lambda h: h.update(layers=[]), "'layers': empty"),  # was IndexError later
        (lambda h: h["layers"][2]["extra"][0].update(source=7), r"edge 0: 'source' must be"),
    ],
)
def test_program_header_type_swaps_are_refused_by_field(edit, match, tmp_path: Path):
    from neurodeploy.quant.program import ProgramFileError

    with np.load(write_graph_program(tmp_path / "g.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays.pop("header")).decode())
    edit(header)
    np.savez(
        tmp_path / "bad.npz", header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays
    )
    with pytest.raises(ProgramFileError, match=match) as info:
        IntProgram.load(tmp_path / "bad.npz")
    assert "bad.npz" in str(info.value)


def test_checkpoint_with_a_huge_layer_is_refused_before_allocating(tmp_path: Path):
    """hidden = [2^40] in the config: was a 2^47-byte allocation (RuntimeError, or the OOM killer);
    the model is now built on the meta device and the weights' shapes compared first."""
    from neurodeploy.training.checkpoint import CheckpointError, load_model

    payload = checkpoint_payload()
    payload["config"]["arch"] = {"hidden": [2**40]}
    torch.save(payload, tmp_path / "big.pt")
    with pytest.raises(CheckpointError, match=r"big\.pt: weights do not fit model 'mlp'"):
        load_model(tmp_path / "big.pt")


def test_recipe_that_is_not_utf8_and_a_nir_node_error_name_the_file(tmp_path: Path):
    """Were a UnicodeDecodeError and a NIRConversionError without the file's name."""
    import h5py

    from neurodeploy.converters.nir_common import NIRConversionError

    bad = tmp_path / "r.toml"
    bad.write_bytes(b"\x80" + RECIPE.encode())
    with pytest.raises(ValueError, match=r"recipe .*r\.toml: not valid TOML"):
        load_recipe(bad)
    path = write_our_nir(tmp_path / "m.nir")
    with h5py.File(path, "r+") as f:
        del f["node/nodes/2_lif/tau"]
        f["node/nodes/2_lif/tau"] = "x"
    with pytest.raises(NIRConversionError, match=r"m\.nir: node '2_lif'"):
        load_model_file(path)
