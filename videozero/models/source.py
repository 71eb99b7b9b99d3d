"""Where a model comes from: a local directory or a hub id, checked before any model library is imported.

A bad directory or an id the offline cache does not hold gets one sentence here, so a command given a bad
model fails in a second instead of after importing torch and transformers.
"""

from __future__ import annotations

import os
from pathlib import Path

from videozero.errors import VideozeroError


def offline() -> bool:
    """Whether `HF_HUB_OFFLINE` forbids downloads."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def looks_local(id_or_dir: str) -> bool:
    """A path rather than a hub id: it exists, starts like a path, or has more than one slash."""
    return (
        Path(id_or_dir).expanduser().exists()
        or id_or_dir.startswith((".", "/", "~"))
        or id_or_dir.count("/") > 1
    )


def check_model_source(id_or_dir: str, local_only: bool) -> str:
    """The directory (as a string) or hub id to load from; raises VideozeroError naming what is missing."""
    path = Path(id_or_dir).expanduser()
    if looks_local(id_or_dir):
        if not path.is_dir():
            raise VideozeroError(
                f"model directory {path} does not exist; build one with `videozero model init`."
            )
        if not (path / "config.json").is_file():
            raise VideozeroError(
                f"{path} has no config.json, so it is not a saved model; point to a Hugging Face model directory "
                "or build one with `videozero model init`."
            )
        return str(path)
    if local_only:
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(id_or_dir, "config.json"), str):
            raise not_found(id_or_dir, local_only)
    return id_or_dir


def not_found(id_or_dir: str, local_only: bool) -> VideozeroError:
    """The error for a hub id that is neither local nor obtainable."""
    how = "HF_HUB_OFFLINE is set, so nothing is downloaded" if local_only else "the hub could not provide it"
    return VideozeroError(
        f"model {id_or_dir!r} is neither a local directory nor a model in the local Hugging Face cache "
        f"({how}); pass a directory, e.g. one built by `videozero model init`."
    )
