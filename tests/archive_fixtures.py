"""What the gallery-archive tests share."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Change = Callable[[dict[str, Any]], None]


def rewrite_manifest(src: Path, dest: Path, change: Change) -> Path:
    """A copy of archive ``src`` at ``dest`` whose manifest.json went through ``change``."""
    with tarfile.open(src) as tar, tarfile.open(dest, "w") as out:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == "manifest.json":
                manifest = json.loads(data)
                change(manifest)
                data = json.dumps(manifest).encode()
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest
