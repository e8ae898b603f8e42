"""The embedded default: a tiny CLIP pretrained on the synthetic world, and its long-tailed task."""

from ltsoups.embedded.model import MODEL_NAME, register_model_config, shipped_weights_path

__all__ = ["MODEL_NAME", "register_model_config", "shipped_weights_path"]
