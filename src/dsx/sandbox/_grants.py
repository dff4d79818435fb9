"""Grants that would hand the host to the guest are refused.

A directory holding code the host runs (the interpreter's prefix, the standard library,
site-packages, dsx itself) or the compiled-module cache with its key is not data: a guest
that can write there runs code as the host the next time it imports or starts a session,
and one that can read the cache's key can forge a compiled module. So a mount that
overlaps one of them — is it, lies inside it, or contains it — is refused, read-only or not,
on every backend (a Docker guest could poison the host's Wasmtime cache just the same).
"""

from __future__ import annotations

import contextlib
import importlib.util
import site
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from dsx.sandbox._types import Mount, UnsafeGrant

__all__ = ["check_grants", "protected_dirs"]


def protected_dirs() -> list[tuple[Path, str]]:
    """The host directories no grant may overlap, each with what it holds."""
    from dsx.sandbox._wasm_runtime import RUNTIME_PACKAGE, cache_dir

    found: list[tuple[str, str]] = [(str(cache_dir()), "dsx's compiled-module cache and its key")]
    for prefix in {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}:
        found.append((prefix, "the Python installation running the host"))
    paths = sysconfig.get_paths()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(name):
            found.append((paths[name], "the host's Python libraries"))
    with contextlib.suppress(Exception):
        found.extend((p, "the host's site-packages") for p in site.getsitepackages())
    with contextlib.suppress(Exception):
        found.append((site.getusersitepackages(), "the host's user site-packages"))
    found.append((str(Path(__file__).resolve().parents[1]), "dsx itself"))
    with contextlib.suppress(Exception):
        spec = importlib.util.find_spec(RUNTIME_PACKAGE)
        for loc in (spec.submodule_search_locations or ()) if spec else ():
            found.append((loc, "the sandbox's runtime"))
    out: list[tuple[Path, str]] = []
    for raw, why in found:
        path = Path(raw).expanduser().resolve()
        if all(p != path for p, _ in out):
            out.append((path, why))
    return out


def check_grants(mounts: Iterable[Mount]) -> None:
    """Raise :class:`UnsafeGrant` for the first mount that overlaps a protected directory."""
    mounts = list(mounts)
    if not mounts:
        return
    protected = protected_dirs()
    for mount in mounts:
        host = Path(mount.host_path).resolve()
        for path, why in protected:
            if host == path or path in host.parents or host in path.parents:
                relation = (
                    "is" if host == path else "is inside" if path in host.parents else "contains"
                )
                raise UnsafeGrant(
                    f"refusing to grant {mount.host_path} to the sandbox "
                    f"({'writable' if mount.writable else 'read-only'}): it {relation} {path}, "
                    f"{why}. A directory that holds host code is the host: a guest that "
                    "changes it runs code outside the sandbox. Grant a directory that holds "
                    "only the data the code needs."
                )
