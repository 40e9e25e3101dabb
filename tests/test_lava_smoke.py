"""Lava smoke tests: the patched lava-nc runs a stock LIF bit-exactly as the spec says, and
scripts/patch_lava.py is idempotent and loud (edits: (a) var_model.py ByteEncoder defaults,
(b) slayer's optional object_detection, (c) lava's import-time mp.set_start_method('fork'),
which fails once tqdm or anything else has touched the multiprocessing context).

What the installed source (lava-nc 0.10.0, lava/proc/lif/models.py, PyLifModelBitAcc and
AbstractPyLifModelFixed) shows, and what the reference below therefore implements:
  * bias: effective_bias = bias_mant << bias_exp (right shift for a negative bias_exp), and it
    is added to v UNSHIFTED: there is no extra << 6 on the bias (scale_bias()).
  * vth: IS shifted: effective_vth = vth << 6 (vth_shift = 6, scale_threshold()); spike iff
    v > vth << 6 (strict).
  * synaptic input is shifted: a_in << 6 (act_shift = 6) before it is added to u.
  * u decays with (4096 - (du + 1)) (ds_offset = 1), v with (4096 - dv) (dm_offset = 0); the
    product is taken in int64 and the MAGNITUDE is shifted right by 12, i.e. rounding toward
    zero.
  * u wraps: u > 2**23 -> u - 2**24, u <= -2**23 -> u + 2**24 (note: u == 2**23 is not
    wrapped by the source); v is clipped to [-(2**23 - 1), 2**23 - 1].
  * hard reset: v <- 0 where a spike occurred; u is not reset.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATCH_SCRIPT = REPO / "scripts" / "patch_lava.py"


def _load_patch_lava():
    spec = importlib.util.spec_from_file_location("neurodeploy_patch_lava", PATCH_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _require_lava():
    if importlib.util.find_spec("lava") is None:
        pytest.skip("lava-nc is not installed (run scripts/setup_env.sh)")


# ---------------------------------------------------------------------------------------------
# Independent plain-Python reference of the spec's integer LIF equations
# ---------------------------------------------------------------------------------------------
UV_MAX = 1 << 23  # u and v are 24-bit signed


def _decay(x: int, factor: int) -> int:
    """x * factor / 4096, rounded toward zero (shift of the magnitude)."""
    p = x * factor
    return -((-p) >> 12) if p < 0 else p >> 12


def reference_lif(u0, v0, du, dv, vth, bias_mant, bias_exp, a_in, steps):
    """Traces (u[t], v[t], spikes[t]) for t = 1..steps, all Python ints."""
    u, v = list(u0), list(v0)
    us, vs, ss = [], [], []
    for t in range(steps):
        spikes = []
        for i in range(len(u)):
            # 1. current decay with the hidden +1, then input << 6; u wraps at 24 bits
            ui = _decay(u[i], 4096 - (du + 1)) + (a_in[t][i] << 6)
            if ui > UV_MAX:
                ui -= 2 * UV_MAX
            elif ui <= -UV_MAX:
                ui += 2 * UV_MAX
            # 2. voltage decay + u + bias (bias_mant << bias_exp, NOT shifted by 6); saturate
            e = bias_exp[i]
            bias = bias_mant[i] << e if e >= 0 else bias_mant[i] >> -e
            vi = _decay(v[i], 4096 - dv) + ui + bias
            vi = max(-(UV_MAX - 1), min(UV_MAX - 1, vi))
            # 3. strict threshold on vth << 6, hard reset of v only
            s = vi > (vth << 6)
            if s:
                vi = 0
            u[i], v[i] = ui, vi
            spikes.append(int(s))
        us.append(list(u))
        vs.append(list(v))
        ss.append(spikes)
    return us, vs, ss


def test_reference_rounds_toward_zero():
    assert _decay(-4097, 4095) == -4095  # -4095.9998: floor would give -4096
    assert _decay(4097, 4095) == 4095
    assert _decay(-1, 2048) == 0
    assert _decay(-3, 2048) == -1


# ---------------------------------------------------------------------------------------------
# Lava LIF, fixed_pt, bit-exact against the reference
# ---------------------------------------------------------------------------------------------
@pytest.mark.lava
def test_lif_fixed_pt_matches_integer_reference():
    _require_lava()
    import numpy as np
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.lif.process import LIF

    steps = 10
    du, dv, vth = 1024, 512, 200  # threshold on v: 200 << 6 = 12800
    # neuron 0: positive start current + bias 100 << 6 = 6400 per step -> spikes periodically;
    # neuron 1: negative state and bias -7 << 3 = -56 -> stays below threshold, and exercises
    #           rounding toward zero of negative products.
    u0, v0 = [3000, -2500], [0, -5000]
    bias_mant, bias_exp = [100, -7], [6, 3]
    a_in = [[0, 0]] * steps  # a_in is not connected: Lava delivers zeros

    ref_u, ref_v, ref_s = reference_lif(u0, v0, du, dv, vth, bias_mant, bias_exp, a_in, steps)
    # the scenario must exercise spikes + hard reset on neuron 0 and none on neuron 1
    assert sum(s[0] for s in ref_s) >= 2 and sum(s[1] for s in ref_s) == 0
    assert any(v[1] < 0 for v in ref_v) and any(u[0] != u0[0] for u in ref_u)

    lif = LIF(
        shape=(2,),
        u=np.array(u0, dtype=np.int32),
        v=np.array(v0, dtype=np.int32),
        du=du,
        dv=dv,
        vth=vth,
        bias_mant=np.array(bias_mant, dtype=np.int32),
        bias_exp=np.array(bias_exp, dtype=np.int32),
    )
    run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    got_u, got_v = [], []
    # If Lava deadlocks, dump the stacks and kill the run instead of hanging CI forever.
    faulthandler.dump_traceback_later(300, exit=True)
    try:
        for _ in range(steps):
            lif.run(condition=RunSteps(num_steps=1), run_cfg=run_cfg)
            got_u.append([int(x) for x in lif.u.get()])
            got_v.append([int(x) for x in lif.v.get()])
    finally:
        try:
            lif.stop()
        finally:
            faulthandler.cancel_dump_traceback_later()

    assert got_v == ref_v
    assert got_u == ref_u


# ---------------------------------------------------------------------------------------------
# scripts/patch_lava.py
# ---------------------------------------------------------------------------------------------
VAR_MODEL_SNIPPET = '''\
from __future__ import annotations

from dataclasses import dataclass, InitVar


@dataclass
class ByteEncoder:
    """Encodes ptr, len, base"""
    base: int = 0
    len: int = 0
    ptr: int = 0


@dataclass
class CoreEncoder:
    x: ByteEncoder = ByteEncoder()
    y: ByteEncoder = ByteEncoder()
    p: ByteEncoder = ByteEncoder()


@dataclass
class AxonEncoder:
    hi: ByteEncoder = ByteEncoder()
    lo: ByteEncoder = ByteEncoder()
'''

SLAYER_SNIPPET = """\
from . import neuron
from . import object_detection as obd

__all__ = [
    'neuron',
    'obd'
]
"""


def _run_patch_script(*args):
    return subprocess.run(
        [sys.executable, str(PATCH_SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.lava
def test_installed_lava_is_patched():
    _require_lava()
    pl = _load_patch_lava()
    files = pl.find_lava_files()
    assert all(files.values()), (files, pl.lava_search_roots())
    var_model, slayer, mp_module = files["var_model"], files["slayer_init"], files["mp_module"]
    vm = var_model.read_text()
    assert "= ByteEncoder()" not in vm
    assert vm.count("field(default_factory=ByteEncoder)") == 8
    assert "from dataclasses import dataclass, field, InitVar" in vm
    sl = slayer.read_text()
    assert pl.SL_MARKER in sl and "except ImportError:" in sl
    assert pl.patch_var_model(var_model, write=False) == pl.ALREADY
    assert pl.patch_slayer_init(slayer, write=False) == pl.ALREADY
    mp_text = mp_module.read_text()
    assert pl.MP_MARKER in mp_text and "mp.set_start_method('fork')\n" not in mp_text
    assert pl.patch_mp_module(mp_module, write=False) == pl.ALREADY
    # and the patched packages import in a clean interpreter
    proc = subprocess.run(
        [sys.executable, "-c", "import lava.magma.compiler.var_model, lava.lib.dl.slayer"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.lava
def test_patch_script_rerun_reports_already_patched():
    _require_lava()
    pl = _load_patch_lava()
    files = list(pl.find_lava_files().values())
    before = [f.read_bytes() for f in files]
    proc = _run_patch_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("already patched") == 3, proc.stdout
    assert "NOT" not in proc.stdout and "ERROR" not in proc.stderr
    assert [f.read_bytes() for f in files] == before
    proc = _run_patch_script("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.lava
def test_lava_imports_after_multiprocessing_context_was_set():
    """tqdm creates a multiprocessing RLock, which fixes the default context; unpatched lava
    then fails at import with 'context has already been set' (edit (c))."""
    _require_lava()
    code = (
        "import multiprocessing as mp\n"
        "mp.RLock()  # what every tqdm progress bar does\n"
        "import lava.proc.lif.process\n"
        "assert mp.get_start_method() == 'fork', mp.get_start_method()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _exec_module(path: Path, name: str):
    """Import a file as module `name` (dataclasses needs it in sys.modules), then unregister."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.modules.pop(name, None)


def test_patch_var_model_on_unpatched_copy(tmp_path):
    f = tmp_path / "var_model.py"
    f.write_text(VAR_MODEL_SNIPPET)
    # the snippet is realistic: Python 3.11 rejects it as lava-nc 0.10.0 ships it
    with pytest.raises(ValueError, match="mutable default"):
        _exec_module(f, "nd_vm_orig")

    proc = _run_patch_script("--var-model", f)
    assert proc.returncode == 0, proc.stderr
    assert "patched" in proc.stdout and "already" not in proc.stdout
    text = f.read_text()
    assert "= ByteEncoder()" not in text
    assert text.count("field(default_factory=ByteEncoder)") == 5
    assert "from dataclasses import dataclass, field, InitVar" in text
    mod = _exec_module(f, "nd_vm_patched")
    a, b = mod.CoreEncoder(), mod.CoreEncoder()
    assert a.x == mod.ByteEncoder() and a.x is not b.x  # one instance per object now

    proc = _run_patch_script("--var-model", f)
    assert proc.returncode == 0 and "already patched" in proc.stdout, proc.stdout + proc.stderr
    assert f.read_text() == text


def _make_slayer_pkg(root: Path, name: str, obd_importable: bool) -> Path:
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(SLAYER_SNIPPET)
    (pkg / "neuron.py").write_text("X = 1\n")
    (pkg / "object_detection.py").write_text(
        "Y = 2\n" if obd_importable else "import cv2_is_not_installed_here_xyz  # noqa\n"
    )
    return pkg


def _import_fresh(root: Path, name: str):
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        mod = importlib.import_module(name)
        star = {}
        exec(f"from {name} import *", star)
        return mod, star
    finally:
        sys.path.remove(str(root))
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def test_patch_slayer_init_on_unpatched_copy(tmp_path):
    pl = _load_patch_lava()
    missing = _make_slayer_pkg(tmp_path, "nd_fake_slayer_missing", obd_importable=False)
    present = _make_slayer_pkg(tmp_path, "nd_fake_slayer_present", obd_importable=True)

    for pkg in (missing, present):
        proc = _run_patch_script("--slayer-init", pkg / "__init__.py")
        assert proc.returncode == 0, proc.stderr
        assert "patched" in proc.stdout and "already" not in proc.stdout

    # object_detection missing: the package imports, 'obd' is gone from __all__ and star-import
    mod, star = _import_fresh(tmp_path, missing.name)
    assert not hasattr(mod, "obd") and "obd" not in mod.__all__
    assert "neuron" in star and "obd" not in star
    # object_detection importable: unchanged behaviour
    mod, star = _import_fresh(tmp_path, present.name)
    assert mod.obd.Y == 2 and "obd" in mod.__all__ and "obd" in star

    text = (missing / "__init__.py").read_text()
    new, status = pl.patch_slayer_init_text(text)
    assert status == pl.ALREADY and new == text
    proc = _run_patch_script("--slayer-init", missing / "__init__.py")
    assert proc.returncode == 0 and "already patched" in proc.stdout
    assert (missing / "__init__.py").read_text() == text


MP_SNIPPET = """\
import multiprocessing as mp

import platform
if platform.system() != 'Windows':
    mp.set_start_method('fork')


class MultiProcessing:
    pass
"""


def test_patch_mp_module_on_unpatched_copy(tmp_path):
    f = tmp_path / "multiprocessing_infra.py"
    f.write_text(MP_SNIPPET)
    proc = _run_patch_script("--mp-module", f)
    assert proc.returncode == 0, proc.stderr
    assert "patched" in proc.stdout and "already" not in proc.stdout
    text = f.read_text()
    assert "    mp.set_start_method('fork')\n" not in text
    assert "        mp.set_start_method('fork', force=True)\n" in text
    # the patched module imports after the default context has been fixed (the original
    # raises "context has already been set" there)
    code = (
        "import importlib.util, multiprocessing as mp, sys\n"
        "mp.RLock()\n"
        "spec = importlib.util.spec_from_file_location('m', sys.argv[1])\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(mp.get_start_method())\n"
    )
    ok = subprocess.run(
        [sys.executable, "-c", code, str(f)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "fork", ok.stderr
    orig = tmp_path / "orig.py"
    orig.write_text(MP_SNIPPET)
    bad = subprocess.run(
        [sys.executable, "-c", code, str(orig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0 and "context has already been set" in bad.stderr

    proc = _run_patch_script("--mp-module", f)
    assert proc.returncode == 0 and "already patched" in proc.stdout, proc.stdout + proc.stderr
    assert f.read_text() == text


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--var-model", "ByteEncoder = ByteEncoder()"),
        ("--slayer-init", "object_detection as obd"),
        ("--mp-module", "mp.set_start_method('fork')"),
    ],
)
def test_patch_fails_loudly_without_expected_text(tmp_path, option, expected):
    f = tmp_path / "some_other_file.py"
    f.write_text("x = 1\n")
    proc = _run_patch_script(option, f)
    assert proc.returncode != 0
    assert str(f) in proc.stderr
    assert expected in proc.stderr
    assert f.read_text() == "x = 1\n"


def test_patch_functions_raise_on_unknown_text(tmp_path):
    pl = _load_patch_lava()
    f = tmp_path / "var_model.py"
    f.write_text("from dataclasses import dataclass\n")
    with pytest.raises(pl.PatchError, match="var_model.py"):
        pl.patch_var_model(f)
    with pytest.raises(pl.PatchError, match="file not found"):
        pl.patch_slayer_init(tmp_path / "nope.py")
