#!/usr/bin/env python3
"""Apply the source edits that lava-nc 0.10.0 / lava-dl 0.6.0 need here (Python 3.11).

lava-nc 0.10.0 and lava-dl 0.6.0 declare Requires-Python <3.11. On Python 3.11 two things
break (see shared/spec/loihi-fixed-point.md, "Installing Lava on Python 3.11"):

(a) ``lava/magma/compiler/var_model.py`` declares dataclass fields with the mutable default
    ``ByteEncoder()``; Python 3.11 rejects that ("mutable default ... use default_factory"),
    so ``import lava.magma`` fails. Every such field becomes
    ``field(default_factory=ByteEncoder)`` and ``field`` is imported from ``dataclasses``.
(b) ``lava/lib/dl/slayer/__init__.py`` unconditionally imports ``object_detection``, which
    needs torchvision and cv2. The import becomes optional: when it fails, ``obd`` is not
    defined and is removed from ``__all__`` (so ``from lava.lib.dl.slayer import *`` stays
    coherent); when it succeeds, ``slayer.obd`` works as before.
(c) ``lava/magma/runtime/message_infrastructure/multiprocessing.py`` calls
    ``mp.set_start_method('fork')`` at import time, which raises "context has already been
    set" whenever anything in the process touched the default multiprocessing context first
    (tqdm does: every progress bar creates a multiprocessing RLock). Then ``import lava.proc``
    fails after any tqdm bar, e.g. training and then running on Lava in one process. The call
    becomes: set 'fork' (force=True) unless the start method already is 'fork'. Not a
    Python 3.11 issue, but the same kind of fix; Lava needs 'fork' either way.

The files are located WITHOUT importing ``lava.magma`` (which fails before the patch):
``importlib.util.find_spec("lava")`` only looks at the top-level (namespace) package.

Idempotent: already-patched text is recognised and left alone ("already patched", exit 0).
If neither the original nor the patched text is found, the script fails (exit 1) naming the
file and the text it expected. Files are written atomically (temp file + os.replace).

Usage:
    python scripts/patch_lava.py                 # patch the lava installed for this python
    python scripts/patch_lava.py --check         # only report; exit 1 if not patched
    python scripts/patch_lava.py --var-model FILE --slayer-init FILE --mp-module FILE
                                                 # explicit files (only those given)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

VAR_MODEL_REL = Path("magma/compiler/var_model.py")
SLAYER_INIT_REL = Path("lib/dl/slayer/__init__.py")
MP_MODULE_REL = Path("magma/runtime/message_infrastructure/multiprocessing.py")

PATCHED = "patched"
ALREADY = "already patched"

# ---------------------------------------------------------------------------------------------
# (a) var_model.py
# ---------------------------------------------------------------------------------------------
# Original:  "    x: ByteEncoder = ByteEncoder()"
_VM_ORIGINAL_FIELD = re.compile(
    r"^(?P<head>[ \t]+\w+[ \t]*:[ \t]*ByteEncoder[ \t]*=[ \t]*)ByteEncoder\(\)(?P<tail>[ \t]*(#.*)?)$",
    re.MULTILINE,
)
# Patched:   "    x: ByteEncoder = field(default_factory=ByteEncoder)"
_VM_PATCHED_FIELD = re.compile(
    r"^[ \t]+\w+[ \t]*:[ \t]*ByteEncoder[ \t]*=[ \t]*"
    r"field\([ \t]*default_factory[ \t]*=[ \t]*ByteEncoder[ \t]*\)",
    re.MULTILINE,
)
# "from dataclasses import dataclass, InitVar"  (single line, no parentheses)
_VM_DATACLASSES_IMPORT = re.compile(
    r"^from[ \t]+dataclasses[ \t]+import[ \t]+(?P<names>[^()\n#]+?)[ \t]*$", re.MULTILINE
)

VM_EXPECTED_ORIGINAL = "x: ByteEncoder = ByteEncoder()"
VM_EXPECTED_PATCHED = "x: ByteEncoder = field(default_factory=ByteEncoder)"

# ---------------------------------------------------------------------------------------------
# (b) slayer/__init__.py
# ---------------------------------------------------------------------------------------------
SL_ORIGINAL_LINE = "from . import object_detection as obd"
_SL_ORIGINAL = re.compile(r"^from \. import object_detection as obd[ \t]*$", re.MULTILINE)
SL_MARKER = "# neurodeploy patch_lava: object_detection is optional"
SL_PATCHED_IMPORT = (
    f"{SL_MARKER} (it needs torchvision and cv2)\n"
    "try:\n"
    "    from . import object_detection as obd\n"
    "except ImportError:\n"
    "    _HAS_OBD = False\n"
    "else:\n"
    "    _HAS_OBD = True\n"
)
SL_PATCHED_ALL = (
    "\n"
    "# (neurodeploy patch_lava) no 'obd' in __all__ if its import failed\n"
    "if not _HAS_OBD and 'obd' in __all__:\n"
    "    __all__.remove('obd')\n"
)


# ---------------------------------------------------------------------------------------------
# (c) message_infrastructure/multiprocessing.py
# ---------------------------------------------------------------------------------------------
MP_ORIGINAL_LINE = "mp.set_start_method('fork')"
_MP_ORIGINAL = re.compile(r"^(?P<indent>[ \t]*)mp\.set_start_method\('fork'\)[ \t]*$", re.MULTILINE)
MP_MARKER = "# neurodeploy patch_lava: tolerate an already-initialised start method"
MP_PATCHED = (
    "{indent}" + MP_MARKER + " (e.g. tqdm's lock)\n"
    "{indent}if mp.get_start_method(allow_none=True) != 'fork':\n"
    "{indent}    mp.set_start_method('fork', force=True)"
)


class PatchError(RuntimeError):
    """The file contains neither the original nor the patched text."""


# ---------------------------------------------------------------------------------------------
# Pure text transformations (unit-testable without files)
# ---------------------------------------------------------------------------------------------
def _vm_field_imported(text: str) -> bool:
    for m in _VM_DATACLASSES_IMPORT.finditer(text):
        names = [n.strip().split(" as ")[0].strip() for n in m.group("names").split(",")]
        if "field" in names:
            return True
    return False


def patch_var_model_text(text: str, path: str = "<text>") -> tuple[str, str]:
    """Return (new_text, status) for var_model.py; status is PATCHED or ALREADY."""
    has_original = bool(_VM_ORIGINAL_FIELD.search(text))
    has_patched = bool(_VM_PATCHED_FIELD.search(text))
    if not has_original and not has_patched:
        raise PatchError(
            f"{path}: expected dataclass fields like '{VM_EXPECTED_ORIGINAL}' (original lava-nc "
            f"0.10.0) or '{VM_EXPECTED_PATCHED}' (already patched); found neither. "
            "Is this lava-nc 0.10.0?"
        )
    if not has_original and _vm_field_imported(text):
        return text, ALREADY

    new = _VM_ORIGINAL_FIELD.sub(r"\g<head>field(default_factory=ByteEncoder)\g<tail>", text)
    if not _vm_field_imported(new):
        m = _VM_DATACLASSES_IMPORT.search(new)
        if m is None:
            raise PatchError(
                f"{path}: expected an import line 'from dataclasses import dataclass, InitVar' "
                "to add 'field' to; found none."
            )
        names = [n.strip() for n in m.group("names").split(",") if n.strip()]
        # keep 'dataclass' first, as in the original: "from dataclasses import dataclass, field, InitVar"
        insert_at = names.index("dataclass") + 1 if "dataclass" in names else len(names)
        names.insert(insert_at, "field")
        new = new[: m.start()] + "from dataclasses import " + ", ".join(names) + new[m.end() :]
    return new, PATCHED


def patch_slayer_init_text(text: str, path: str = "<text>") -> tuple[str, str]:
    """Return (new_text, status) for lava/lib/dl/slayer/__init__.py."""
    if SL_MARKER in text and "_HAS_OBD" in text:
        if _SL_ORIGINAL.search(text):
            raise PatchError(
                f"{path}: contains both the patched block ('{SL_MARKER}') and the original "
                f"unconditional line '{SL_ORIGINAL_LINE}'; refusing to guess. Reinstall lava-dl."
            )
        return text, ALREADY
    matches = list(_SL_ORIGINAL.finditer(text))
    if not matches:
        raise PatchError(
            f"{path}: expected the line '{SL_ORIGINAL_LINE}' (original lava-dl 0.6.0) or the "
            f"block marked '{SL_MARKER}' (already patched); found neither. Is this lava-dl 0.6.0?"
        )
    if len(matches) > 1:
        raise PatchError(f"{path}: the line '{SL_ORIGINAL_LINE}' occurs {len(matches)} times.")
    m = matches[0]
    new = text[: m.start()] + SL_PATCHED_IMPORT.rstrip("\n") + text[m.end() :]
    if not new.endswith("\n"):
        new += "\n"
    new += SL_PATCHED_ALL
    return new, PATCHED


def patch_mp_module_text(text: str, path: str = "<text>") -> tuple[str, str]:
    """Return (new_text, status) for lava/magma/runtime/message_infrastructure/multiprocessing.py."""
    has_patched = MP_MARKER in text and "mp.set_start_method('fork', force=True)" in text
    matches = list(_MP_ORIGINAL.finditer(text))
    if has_patched and not matches:
        return text, ALREADY
    if not matches:
        raise PatchError(
            f"{path}: expected the line '{MP_ORIGINAL_LINE}' (original lava-nc 0.10.0) or the "
            f"block marked '{MP_MARKER}' (already patched); found neither. Is this lava-nc 0.10.0?"
        )
    if len(matches) > 1 or has_patched:
        raise PatchError(
            f"{path}: unexpected mix: '{MP_ORIGINAL_LINE}' occurs {len(matches)} time(s)"
            + (" next to the patched block" if has_patched else "")
            + "; reinstall lava-nc."
        )
    m = matches[0]
    new = text[: m.start()] + MP_PATCHED.format(indent=m.group("indent")) + text[m.end() :]
    return new, PATCHED


# ---------------------------------------------------------------------------------------------
# File operations
# ---------------------------------------------------------------------------------------------
def _atomic_write(path: Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _patch_file(path, transform: Callable[[str, str], tuple[str, str]], write: bool) -> str:
    path = Path(path)
    if not path.is_file():
        raise PatchError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    new, status = transform(text, str(path))
    if status == PATCHED and write:
        _atomic_write(path, new)
    return status


def patch_var_model(path, write: bool = True) -> str:
    """Patch lava/magma/compiler/var_model.py in place. Returns PATCHED or ALREADY.

    Raises PatchError if neither the original nor the patched text is present."""
    return _patch_file(path, patch_var_model_text, write)


def patch_slayer_init(path, write: bool = True) -> str:
    """Patch lava/lib/dl/slayer/__init__.py in place. Returns PATCHED or ALREADY.

    Raises PatchError if neither the original nor the patched text is present."""
    return _patch_file(path, patch_slayer_init_text, write)


def patch_mp_module(path, write: bool = True) -> str:
    """Patch lava/magma/runtime/message_infrastructure/multiprocessing.py in place.

    Returns PATCHED or ALREADY; raises PatchError if neither text is present."""
    return _patch_file(path, patch_mp_module_text, write)


# (key, relative path under lava/, label, patch function, pip requirement)
TARGETS = (
    ("var_model", VAR_MODEL_REL, "lava-nc var_model.py", patch_var_model, "lava-nc==0.10.0"),
    (
        "slayer_init",
        SLAYER_INIT_REL,
        "lava-dl slayer/__init__.py",
        patch_slayer_init,
        "lava-dl==0.6.0",
    ),
    (
        "mp_module",
        MP_MODULE_REL,
        "lava-nc message_infrastructure/multiprocessing.py",
        patch_mp_module,
        "lava-nc==0.10.0",
    ),
)


def lava_search_roots() -> list[Path]:
    """Directories named ``lava`` for the running interpreter, found without importing lava."""
    roots: list[Path] = []
    try:
        spec = importlib.util.find_spec("lava")  # top-level namespace package only
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        roots.extend(Path(loc) for loc in spec.submodule_search_locations or [])
        if spec.origin and spec.origin not in ("namespace", "built-in"):
            roots.append(Path(spec.origin).parent)
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            roots.append(Path(p) / "lava")
    seen, out = set(), []
    for r in roots:
        key = str(r.resolve()) if r.exists() else str(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def find_lava_files(roots: Iterable[Path] | None = None) -> dict[str, Path | None]:
    """{"var_model", "slayer_init", "mp_module"} -> file of the installed lava (None: missing)."""
    roots = list(roots) if roots is not None else lava_search_roots()
    return {
        key: next((r / rel for r in roots if (r / rel).is_file()), None) for key, rel, *_ in TARGETS
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--var-model", type=Path, help="explicit path of lava/magma/compiler/var_model.py"
    )
    ap.add_argument(
        "--slayer-init", type=Path, help="explicit path of lava/lib/dl/slayer/__init__.py"
    )
    ap.add_argument(
        "--mp-module",
        type=Path,
        help="explicit path of lava/magma/runtime/message_infrastructure/multiprocessing.py",
    )
    ap.add_argument("--lava-root", type=Path, help="directory of the installed 'lava' package")
    ap.add_argument("--check", action="store_true", help="report only; exit 1 if not patched")
    args = ap.parse_args(argv)

    explicit = {
        "var_model": args.var_model,
        "slayer_init": args.slayer_init,
        "mp_module": args.mp_module,
    }
    jobs = []  # (label, path, function)
    if any(explicit.values()):
        for key, _rel, label, fn, _req in TARGETS:
            if explicit[key] is not None:
                jobs.append((label, explicit[key], fn))
    else:
        roots = [args.lava_root] if args.lava_root else lava_search_roots()
        found = find_lava_files(roots)
        missing = [f"lava/{rel} ({req})" for key, rel, _l, _f, req in TARGETS if found[key] is None]
        if missing:
            print(
                "patch_lava: ERROR: installed lava not found for "
                f"{sys.executable}: missing {', '.join(missing)}; searched "
                f"{[str(r) for r in roots]}. Install it first: python -m pip install --no-deps "
                "--ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0",
                file=sys.stderr,
            )
            return 2
        jobs = [(label, found[key], fn) for key, _rel, label, fn, _req in TARGETS]

    rc = 0
    for label, path, fn in jobs:
        try:
            status = fn(path, write=not args.check)
        except PatchError as exc:
            print(f"patch_lava: ERROR: {exc}", file=sys.stderr)
            rc = 1
            continue
        if args.check and status == PATCHED:
            print(f"patch_lava: {label}: NOT patched: {path}")
            rc = max(rc, 1)
        else:
            print(f"patch_lava: {label}: {status}: {path}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
