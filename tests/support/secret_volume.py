"""A directory laid out and updated as the kubelet does a mounted Secret volume.

Kubernetes' AtomicWriter (pkg/volume/util/atomic_writer.go) writes each
version of the Secret into a new hidden directory ``..<timestamp>``, points
the symlink ``..data`` at it by renaming a fresh symlink over it (one atomic
rename), and exposes every key as ``<key> -> ..data/<key>``. A reader thus
sees the old file or the new one, never half of either, and the path it
opened once keeps naming the old version's inode. The same steps, on a real
file system, give the key-reload tests what a pod sees.
"""

from __future__ import annotations

import os
from pathlib import Path


class SecretVolume:
    def __init__(self, root: Path):
        self.root = root
        self._version = 0
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

    def write(self, data: dict[str, str]) -> None:
        """Publish a new version of the Secret, atomically."""
        self._version += 1
        version = self.root / f"..2026_12_07_00_00_00.{self._version:06d}"
        version.mkdir()
        for key, text in data.items():
            (version / key).write_text(text)
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        previous = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        os.rename(staged, self.root / "..data")
        for key in data:
            link = self.root / key
            if not link.is_symlink():
                link.symlink_to(Path("..data") / key)
        if previous:
            for old in (self.root / previous).iterdir():
                old.unlink()
            (self.root / previous).rmdir()
