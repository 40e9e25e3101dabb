"""Files a run writes: owned, never overwritten by accident, never half-written.

The lowest layer of the package (imports nothing from neurodeploy), used by every command that
writes a run folder or an output file:

- :func:`atomic_write` writes through a temporary file in the target's folder (flushed and
  fsync'ed) and ``os.replace``-s it over the target, so a reader sees the old file or the new
  one, never a torn one; the temporary is removed on any error.
- :func:`check_not_input` refuses an output path that resolves to one of the command's inputs
  (``export ck.pt -o ck.pt``) before any work is done.
- :class:`RunLock` is an advisory lock held for the whole run: ``fcntl.flock`` on
  ``<folder>/.neurodeploy.lock``, a file holding the holder's PID and host. A second holder is
  refused by name with the first holder's PID; the kernel drops the flock when its holder dies
  (even by ``kill -9``), so a lock file left by a dead process is taken over and said so.
- :func:`clean_temporaries` removes the temporaries a killed writer left in a folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

LOCK_NAME = ".neurodeploy.lock"
# temporaries: ".<target name>.<random>.ndtmp" in the target's folder (hidden, one suffix)
TEMP_SUFFIX = ".ndtmp"
# earlier versions wrote checkpoints through ".<name>.tmp<pid>"; cleaned up as well
_LEGACY_TEMP = re.compile(r"^\..+\.tmp\d+$")
# exit status of a process ended by a signal, as a shell reports it: 128 + signal number
_SIGNAL_EXIT_BASE = 128

PathLike = str | os.PathLike[str]


class RunLockError(ValueError):
    """The run folder is locked by another live process (message names folder and PID)."""


class OutputIsInputError(ValueError):
    """An output path resolves to one of the command's input files."""


def _temp_in(folder: Path, name: str) -> tuple[int, Path]:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=folder)
    return fd, Path(tmp)


def atomic_write(
    path: PathLike, write_fn: Callable[[IO[bytes]], Any], *, mode: int | None = None
) -> Path:
    """Write ``path`` atomically: ``write_fn(f)`` fills a binary file object ``f`` opened on a
    temporary in the same folder; it is flushed, fsync'ed and renamed over ``path``.

    On any error (in ``write_fn``, a full disk, a signal turned into an exception) the
    temporary is removed and ``path`` is left as it was. The file gets ``mode`` if given, else
    the permissions a plain ``open`` would give (0o666 less the umask). Returns ``path``.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = _temp_in(folder, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(e, OSError) and e.filename is None and e.strerror:
            # a write or fsync failing (ENOSPC, EIO) names no file: name the target
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def check_not_input(
    out: PathLike | None, inputs: Iterable[PathLike | None], *, option: str = "-o/--out"
) -> None:
    """Refuse an output path that is one of the inputs (after resolving links and ``..``).

    Raises :class:`OutputIsInputError` naming the option and the file; ``None`` entries are
    skipped (optional inputs / outputs).
    """
    if out is None:
        return
    o = Path(out).resolve()
    for i in inputs:
        if i is None:
            continue
        p = Path(i)
        same = p.resolve() == o
        if not same and p.exists() and o.exists():
            try:
                same = os.path.samefile(p, o)
            except OSError:
                same = False
        if same:
            raise OutputIsInputError(
                f"{option} {out}: is the input file {i}; writing there would overwrite the "
                f"input: choose another output path (nothing was written)"
            )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(path: Path) -> tuple[int | None, str]:
    """(PID, host) written in a lock file, (None, "") when unreadable or empty."""
    try:
        text = path.read_text()
    except OSError:
        return None, ""
    fields = dict(
        ln.split("=", 1) for ln in text.splitlines() if "=" in ln
    )  # "pid=123\nhost=name\n"
    try:
        pid = int(fields.get("pid", ""))
    except ValueError:
        pid = None
    return pid, fields.get("host", "")


class RunLock:
    """Advisory lock on a run folder, held from ``__enter__`` (or :meth:`acquire`) to exit.

    ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<folder>/.neurodeploy.lock``; the file holds
    ``pid=<PID>`` and ``host=<hostname>``. A second :class:`RunLock` on the same folder (another
    process, or another one in this process) raises :class:`RunLockError` naming the folder and
    the holder's PID. Released (and the file removed) on normal exit, on an exception, and on
    SIGTERM while held (turned into ``SystemExit(143)`` so ``finally`` blocks run; SIGINT is
    Python's KeyboardInterrupt already). A holder killed with ``kill -9`` loses its flock in the
    kernel; its file stays, and the next holder takes it over, saying so (:attr:`took_over`
    holds the message, also printed to ``stderr`` unless ``quiet``). A folder the lock created
    and the run left empty is removed again on release.

    Advisory: it stops a second neurodeploy writer, not other programs. ``flock`` may not
    work across hosts on network filesystems; the host is written for the message.
    """

    def __init__(self, folder: PathLike, *, what: str = "run folder", quiet: bool = False):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.quiet = quiet
        self.took_over: str | None = None
        self._fd: int | None = None
        self._old_term: Any = None
        self._created = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock already held by this RunLock")
        self._created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # retry if the file was replaced between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                pid, host = _read_holder(self.path)
                who = f"process {pid}" if pid is not None else "another process"
                if host and host != socket.gethostname():
                    who += f" on host {host}"
                raise RunLockError(
                    f"{self.what} {self.folder}: in use by {who} (lock file {self.path}); "
                    f"wait for it to finish or choose another folder"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file after we opened it
                os.close(fd)
                continue
            break
        else:  # pragma: no cover - only under a storm of competing holders
            raise RunLockError(f"{self.what} {self.folder}: could not lock {self.path}")
        pid, host = _read_holder(self.path)
        if pid is not None and pid != os.getpid():
            state = "no longer running" if not _pid_alive(pid) else "lock released"
            where = f" on host {host}" if host and host != socket.gethostname() else ""
            self.took_over = (
                f"{self.what} {self.folder}: took over a stale lock of process {pid}{where} "
                f"({state}; it may have left a partial run: resume or check the folder)"
            )
            if not self.quiet:
                print(f"neurodeploy: {self.took_over}", file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()}\nhost={socket.gethostname()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        self._install_sigterm()
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._restore_sigterm()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still holding the flock: nobody else owns the file
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        if self._created:  # a folder this lock made and the run left empty (it failed early)
            with contextlib.suppress(OSError):
                self.folder.rmdir()

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def _term(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(_SIGNAL_EXIT_BASE + signum)

        self._old_term = signal.signal(signal.SIGTERM, _term)

    def _restore_sigterm(self) -> None:
        if self._old_term is None:
            return
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_term)
        self._old_term = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)


def is_temporary(name: str) -> bool:
    """Whether a file name is one of our temporaries (``.<name>.<random>.ndtmp``, legacy
    ``.<name>.tmp<pid>``)."""
    return name.startswith(".") and (name.endswith(TEMP_SUFFIX) or bool(_LEGACY_TEMP.match(name)))


def clean_temporaries(folder: PathLike) -> list[Path]:
    """Remove the temporaries a killed writer left in ``folder`` (not recursive); return them.

    Call it while holding the folder's :class:`RunLock` so no live writer's temporary goes.
    A missing folder has none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in sorted(folder.iterdir()):
        if is_temporary(p.name) and p.is_file():
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed.append(p)
    return removed
