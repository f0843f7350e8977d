"""animegan: train DCGANs that draw anime-style faces.

The package root stays import-light so that `animegan --help` never pays for torch;
`load_generator` imports it on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from animegan_cli.sample import LoadedGenerator


def load_generator(path: str | os.PathLike[str], device: str = "auto") -> LoadedGenerator:
    """Load a checkpoint (full or generator-only), a run folder (its generator) or a folder
    written by `animegan export` as a ready-to-sample generator."""
    from animegan_cli.sample import load_generator as _load

    return _load(path, device=device)


__all__ = ["__version__", "load_generator"]
