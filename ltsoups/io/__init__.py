"""Files on disk: atomic writes and the safetensors format."""
