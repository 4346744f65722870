"""Paths named by configs, kept inside a work directory.

A config (a sweep file, a study config read from disk) is data from whoever wrote it. When it
names a file or folder to write, `safe_join` turns that name into a path that is guaranteed to
lie inside the work directory: absolute paths, ``..`` components and symlinks that lead out are
refused with `ConfigError` before anything is written.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from memjax.errors import ConfigError


def safe_join(root: str | os.PathLike, relative: str | os.PathLike, *, what: str = "path") -> Path:
    """`root / relative`, refusing any `relative` that could land outside `root`.

    Args:
      root: the work directory (need not exist yet).
      relative: a relative path taken from a config, e.g. ``"runs/lr_0.001"``.
      what: the config field it came from, for the error message (e.g. ``"sweep.out"``).

    Returns:
      ``Path(root) / relative`` (not resolved, so messages show the names the user wrote).

    Raises:
      ConfigError: `relative` is not a string, is empty, holds a NUL byte, is absolute (POSIX
        or Windows style), has a ``..`` component, or resolves (through symlinks that exist
        now) to a location outside `root`.
    """
    if isinstance(relative, os.PathLike):
        relative = os.fspath(relative)
    if not isinstance(relative, str):
        raise ConfigError(f"{what}={relative!r}: expected a relative path (a string)")
    if relative.strip() == "":
        raise ConfigError(f"{what}={relative!r}: empty path; name a file or folder inside "
                          f"the work directory")
    if "\0" in relative:
        raise ConfigError(f"{what}={relative!r}: contains a NUL byte")
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if (posix.is_absolute() or windows.is_absolute() or windows.drive
            or relative.startswith(("/", "\\"))):
        raise ConfigError(f"{what}={relative!r}: absolute paths are not allowed; give a path "
                          f"relative to the work directory {os.fspath(root)}")
    if ".." in posix.parts or ".." in windows.parts:
        raise ConfigError(f"{what}={relative!r}: '..' is not allowed; give a path inside the "
                          f"work directory {os.fspath(root)}")
    root = Path(root)
    joined = root / posix
    # Symlinks already on disk: resolve both sides (non-strict: missing tails are fine) and
    # require containment. A link inside the work directory pointing elsewhere is an escape.
    real_root = root.resolve()
    real = joined.resolve()
    if real != real_root and real_root not in real.parents:
        raise ConfigError(f"{what}={relative!r}: resolves to {real}, outside the work directory "
                          f"{real_root} (through a symbolic link)")
    if real == real_root:
        raise ConfigError(f"{what}={relative!r}: names the work directory itself; name a file "
                          "or folder inside it")
    return joined
