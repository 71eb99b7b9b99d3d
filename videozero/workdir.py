"""Where videozero keeps its work (store, caches, models, runs) when no directory is given."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_WORKDIR = "videozero_work"


def workdir_default() -> Path:
    """The work directory: $VIDEOZERO_WORKDIR or ./videozero_work."""
    return Path(os.environ.get("VIDEOZERO_WORKDIR", DEFAULT_WORKDIR))
