"""A deterministic synthetic visual world: attribute-composed 32x32 images and their captions."""
