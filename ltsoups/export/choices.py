"""The export formats by name: importable without torch, for the CLI's options."""

from __future__ import annotations

from enum import Enum


class ExportFormat(str, Enum):
    OPEN_CLIP = "open-clip"
    TIMM = "timm"
    ONNX = "onnx"
