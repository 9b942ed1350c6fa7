"""Run provenance and atomic file writes, shared by every layer.

Every experiment writes ``run.json`` beside its results: the config it ran with, the seed,
package versions and the git revision, so a result can be traced to the code that made it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import localcomp

_PACKAGES = ("numpy", "scipy", "sympy", "jax", "jaxlib", "torch", "mitsuba", "matplotlib", "hypothesis")


def repo_root() -> Path:
    """The source checkout this package was imported from (editable install)."""
    return Path(__file__).resolve().parent.parent


def git_revision(path: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout (with ``+dirty`` when it has changes), or None."""
    cwd = path or repo_root()
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "") if rev else None


def package_versions(names=_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution in ``names`` (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_metadata(config: Any = None, seed: int | None = None) -> dict:
    """Everything needed to trace a result: config, seed, versions, revision, command line."""
    if hasattr(config, "__dataclass_fields__"):
        from dataclasses import asdict
        config = asdict(config)
    return {
        "package_version": localcomp.__version__,
        "git_revision": git_revision(),
        "seed": seed,
        "config": config,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "argv": sys.argv,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def result_file_mode() -> int:
    """Mode of every file this package writes: what ``open`` would give under the umask
    (``0o666 & ~umask``: 0o644 under 022, 0o664 under 002), and always group-readable
    (0o640 under 077), so that results are shared with the group (issue 15 item 3).
    ``tempfile.mkstemp`` alone would leave 0o600."""
    return (0o666 & ~current_umask()) | 0o040


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``.

    A reader (or a resumed run) sees either the old file or the complete new one, never a
    truncated file, even if the process is killed mid-write. The file gets
    :func:`result_file_mode` (group-readable).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, result_file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(value: Any):
    # numpy / jax scalars and arrays, Paths
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_run_record(out_dir: str | os.PathLike, config: Any = None, seed: int | None = None,
                     name: str = "run.json") -> dict:
    """Write ``run.json`` (config + provenance) into ``out_dir`` and return it."""
    record = run_metadata(config, seed)
    write_json_atomic(Path(out_dir) / name, record)
    return record


def refuse_overwrite(paths, force: bool, flag: str = "--force") -> None:
    """A :class:`~localcomp.errors.UserError` naming the first of ``paths`` that exists, unless
    ``force``: commands that write results call it before computing anything, so that a default
    ``--out`` never replaces committed results silently (issue 15 item 3)."""
    from localcomp.errors import UserError

    if force:
        return
    for path in paths:
        if Path(path).exists():
            raise UserError(f"{path} exists; pass {flag} to overwrite it (or choose another output)")


def check_writable_file(path: str | os.PathLike, flag: str) -> None:
    """A UserError naming ``flag`` unless ``path`` can be written as a file: not a directory,
    and its nearest existing ancestor a directory this process may write into. Checked before
    a long computation, so that a bad path fails in a second, not after the work."""
    from localcomp.errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag}: {path} is a directory, not a file path")
    _check_writable_parent(path.parent, flag, path)


def check_writable_dir(path: str | os.PathLike, flag: str) -> None:
    """A UserError naming ``flag`` unless ``path`` is (or can be created as) a writable directory."""
    from localcomp.errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag}: {path} exists and is not a directory")
    _check_writable_parent(path, flag, path)


def _check_writable_parent(directory: Path, flag: str, target: Path) -> None:
    from localcomp.errors import UserError

    ancestor = directory if str(directory) else Path(".")
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise UserError(f"{flag}: cannot write {target}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{flag}: cannot write {target}: no write permission in {ancestor}")
