"""Build the Docker backend's image locally, without any registry, and check backends.

``build_image`` bootstraps a minimal Debian with ``python3`` (``debootstrap``, from
Debian's package mirror), trims what Python does not need, and imports the tree into
the engine as an image (``docker import``). It needs root, ``debootstrap`` and a running
engine; each missing piece is reported with the command that provides it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsx.sandbox._types import SandboxUnavailable

__all__ = ["TRIM", "build_image", "check_backends"]

#: Paths (relative to the root file system) removed before import: docs, caches, locales.
TRIM = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
)
SUITE = "bookworm"


def _bootstrap(root: Path, *, mirror: str | None, log: Callable[[str], None]) -> None:
    if (root / "usr/bin/python3").exists():
        log(f"reusing the root file system in {root}")
        return
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise SandboxUnavailable(
            "building the sandbox image runs debootstrap, which needs root: run "
            "`sudo dsx sandbox build-image` (or build as root once; the image stays in the engine)"
        )
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise SandboxUnavailable(
            "debootstrap is not installed; on Debian/Ubuntu: apt-get install -y debootstrap"
        )
    root.mkdir(parents=True, exist_ok=True)
    cmd = [debootstrap, "--variant=minbase", "--include=python3", SUITE, str(root)]
    if mirror:
        cmd.append(mirror)
    log("$ " + " ".join(cmd) + "   (about a minute)")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-3000:]
        raise SandboxUnavailable(f"debootstrap failed (exit {proc.returncode}):\n{tail}")


def _trim(root: Path) -> None:
    for rel in TRIM:
        target = root / rel
        if target.is_dir() and not target.is_symlink():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def build_image(
    name: str | None = None,
    *,
    rootfs: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    client: Any = None,
    log: Callable[[str], None] = print,
) -> str:
    """Build (or rebuild) the sandbox image and return its id.

    Args:
        name: image name (default :data:`~dsx.sandbox.DEFAULT_IMAGE`).
        rootfs: a directory for the root file system; kept, and reused when it already
            holds one (default: a temporary directory, removed afterwards).
        mirror: a Debian mirror URL for debootstrap (default: Debian's).
        client: a ``docker.DockerClient`` (default: from the environment).
        log: where progress lines go.
    """
    from dsx.sandbox._docker import DEFAULT_IMAGE, GUEST_USER, docker_client

    name = name or DEFAULT_IMAGE
    repo, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "latest")
    client = client or docker_client()  # fail early, before a minute of debootstrap
    tar = shutil.which("tar")
    if tar is None:
        raise SandboxUnavailable("`tar` is needed to build the image; apt-get install -y tar")
    own_root = rootfs is None
    root = Path(rootfs or tempfile.mkdtemp(prefix="dsx-rootfs-"))
    try:
        _bootstrap(root, mirror=mirror, log=log)
        _trim(root)
        with tempfile.TemporaryDirectory(prefix="dsx-image-") as tmp:
            archive = os.path.join(tmp, "rootfs.tar")
            log(f"packing {root}")
            with open(archive, "wb") as out:
                subprocess.run(
                    [tar, "--numeric-owner", "-C", str(root), "-c", "."], stdout=out, check=True
                )
            log(f"importing it as {repo}:{tag}")
            changes = [
                f"USER {GUEST_USER}",
                "WORKDIR /tmp",
                'CMD ["python3"]',
                "LABEL dsx.sandbox=1",
            ]
            # A path (not a file object): docker-py then sends it with no read timeout.
            client.api.import_image(src=archive, repository=repo, tag=tag, changes=changes)
        image = client.images.get(f"{repo}:{tag}")
    finally:
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    log(f"built {repo}:{tag} ({image.short_id})")
    return str(image.id)


def check_backends(*, image: str | None = None) -> dict[str, str | None]:
    """For each backend, ``None`` when it can run here, else what is missing and how to fix it."""
    from dsx.sandbox import _wasm_runtime
    from dsx.sandbox._docker import DEFAULT_IMAGE, docker_client, missing_image_message

    report: dict[str, str | None] = {}
    try:
        _wasm_runtime._wasmtime()
        _wasm_runtime.verified_runtime()
        report["wasmtime"] = None
    except Exception as exc:
        report["wasmtime"] = str(exc)
    try:
        client = docker_client()
        try:
            client.images.get(image or DEFAULT_IMAGE)
            report["docker"] = None
        except Exception:
            report["docker"] = missing_image_message(image or DEFAULT_IMAGE)
    except Exception as exc:
        report["docker"] = str(exc)
    return report
