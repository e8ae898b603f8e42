"""Exporting a saved classifier to other libraries (open_clip, timm, ONNX), each export verified on reload."""
