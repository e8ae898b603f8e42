"""The ``ltsoups-mini`` open_clip architecture and where its shipped pretrained weights live."""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "ltsoups-mini"
_PACKAGE_DIR = Path(__file__).resolve().parent
MODEL_CONFIG_PATH = _PACKAGE_DIR / f"{MODEL_NAME}.json"


def register_model_config() -> None:
    """Make ``open_clip.create_model("ltsoups-mini")`` and its tokenizer resolve; safe to call repeatedly."""
    import open_clip

    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIG_PATH)


def shipped_weights_path() -> Path:
    """The pretrained ``ltsoups-mini`` weights that ship with the package (safetensors, with a sidecar)."""
    return _PACKAGE_DIR / "weights" / f"{MODEL_NAME}.safetensors"
