"""Where animegan keeps files that are not the user's outputs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$ANIMEGAN_CACHE, else the XDG cache folder: prepared copies of raw training folders."""
    if os.environ.get("ANIMEGAN_CACHE"):
        return Path(os.environ["ANIMEGAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "animegan"
