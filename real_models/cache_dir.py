"""Where real_models keeps what it fetches and derives, and how it writes there atomically.

The cache root is ``$SCDSIM_CACHE`` when set, else ``~/.cache/scdsim/models``. Everything under it
is written into a temporary sibling first and renamed into place only when complete, so an
interrupted fetch or conversion never leaves a half-written entry that a later load would trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

ENV_VAR = "SCDSIM_CACHE"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_root() -> Path:
    """The cache directory (``$SCDSIM_CACHE`` or ``~/.cache/scdsim/models``), not created here."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "scdsim" / "models"


def say(msg: str) -> None:
    """Tell the user on stderr what is fetched or built and where it goes."""
    print(f"[real_models] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Build a directory in a temporary sibling; rename it to ``final`` only on success.

    Yields the temporary path. On an exception the temporary directory is removed and ``final``
    is left untouched. If ``final`` appeared meanwhile (another process finished first), the
    new copy is discarded and the existing one is kept.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the cache is ordinary files
    try:
        yield tmp
        for f in tmp.rglob("*"):  # some writers (mkstemp, safetensors) make 0600 files
            if f.is_file():
                os.chmod(f, 0o666 & ~_umask())
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: Path, mode: str = "wb"):
    """Write a file through a temporary sibling renamed to ``final`` on success (yields the handle)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
