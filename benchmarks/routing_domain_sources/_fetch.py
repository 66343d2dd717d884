"""Download and unpack one pinned package from PyPI (sdist), Debian (.deb) or npm (registry tarball)."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path


def _unpack(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    else:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    subs = [p for p in dest.iterdir() if p.is_dir()]
    return subs[0] if len(subs) == 1 else dest


def _pip_download(name: str, version: str, into: Path) -> Path:
    """The sdist of ``name==version``; metadata is built without isolation first (fast), else in isolation."""
    base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    for extra in (["--no-build-isolation"], []):
        subprocess.run([*base, *extra, f"{name}=={version}", "-d", str(into)], check=False, capture_output=True)
        archives = sorted(p for p in into.iterdir() if p.name.endswith((".tar.gz", ".zip")))
        if archives:
            return archives[0]
    raise RuntimeError(f"pip could not download the sdist of {name}=={version}")


def fetch(registry: str, name: str, version: str, workdir: Path) -> Path:
    """The unpacked root of a pinned package: an sdist's or npm tarball's top folder, or a .deb's file tree.

    Args:
        registry: ``"pypi"``, ``"debian"`` or ``"npm"``.
        name: the package name in that registry.
        version: the exact version.
        workdir: where downloads and unpacked trees go; a package fetched before is reused.
    """
    folder = workdir / re.sub(r"[^A-Za-z0-9._-]", "_", f"{registry}-{name}-{version}")
    marker = folder / ".root"
    if marker.exists():
        return Path(marker.read_text())
    download = folder / "download"
    download.mkdir(parents=True, exist_ok=True)
    if registry == "debian":
        subprocess.run(
            ["apt-get", "download", "-q", f"{name}={version}"], check=True, cwd=download, capture_output=True
        )
        root = folder / "tree"
        subprocess.run(["dpkg-deb", "-x", str(next(download.glob("*.deb"))), str(root)], check=True)
    elif registry == "npm":
        out = subprocess.run(
            ["npm", "pack", f"{name}@{version}", "--silent"], cwd=download, check=True, capture_output=True, text=True
        )
        root = _unpack(download / out.stdout.strip().splitlines()[-1], folder / "tree")
    elif registry == "pypi":
        root = _unpack(_pip_download(name, version, download), folder / "tree")
    else:
        raise ValueError(f"unknown registry {registry!r}; use pypi, debian or npm")
    marker.write_text(str(root))
    return root
