"""Built-in backbone: any open_clip model, from a pretrained tag or a local safetensors file.

torch and open_clip are imported in ``load``: naming and validating the plugin must not load them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from ltsoups.contracts import Backbone, LoadedBackbone, PluginParams, TextTower
from ltsoups.peft import PeftMethod
from ltsoups.plugins.model_names import MODEL_SCHEMAS, no_such_model

if TYPE_CHECKING:
    import torch

    from ltsoups.io.safetensors import TensorLayout

EMBEDDED_TAG = "embedded"


@contextmanager
def _without_warnings() -> Iterator[None]:
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


class FeatureSpace(str, Enum):
    AFTER_PROJECTION = "after-projection"
    BEFORE_PROJECTION = "before-projection"


class OpenClipParams(PluginParams):
    model: str = Field("ltsoups-mini", min_length=1, description="open_clip model name, e.g. ViT-B-16")
    pretrained: str = Field(
        EMBEDDED_TAG,
        min_length=1,
        description="an open_clip pretrained tag (e.g. 'openai'; downloads on first use), a local .safetensors "
        "file, or 'embedded' for the mini-CLIP shipped with ltsoups",
    )
    cache_dir: str | None = Field(None, description="where open_clip caches downloaded weights")
    peft: PeftMethod = Field(
        PeftMethod.NONE,
        description="none: full fine-tune (LT-Soups); the PEFT baselines freeze the encoder and train small "
        "adapters: lora (LIFT's: query and value projections, (x A B)/r), lora-mlp (LIFT's lora + lora_mlp: "
        "also both MLP matrices), adaptformer (LIFT's default: a bottleneck beside each MLP reading the pre-ln_2 "
        "residual, own LayerNorm, learnable scale from 1), lora-all (ours: every attention and MLP matrix)",
    )
    features: FeatureSpace = Field(
        FeatureSpace.AFTER_PROJECTION,
        description="after-projection: the image tower's output, in CLIP's joint space, so theta_0 is exactly the "
        "zero-shot CLIP classifier; before-projection: the pooled token before CLIP's projection (ViT: the CLS "
        "token after ln_post) with the text features mapped back by proj^T and renormalised (the authors' and "
        "LIFT's head; not exactly zero-shot CLIP)",
    )
    peft_rank: int | None = Field(
        None,
        ge=1,
        description="LoRA rank or AdaptFormer bottleneck width; default: LIFT's rule "
        "2^max(0, int(log2(classes / (2 * blocks)))), e.g. 4 for CIFAR-100 and 32 for ImageNet-LT on ViT-B/16",
    )

    @model_validator(mode="after")
    def _rank_needs_peft(self) -> OpenClipParams:
        if self.peft_rank is not None and self.peft is PeftMethod.NONE:
            raise ValueError(f"peft_rank {self.peft_rank} has no effect with peft: none; set peft or drop peft_rank")
        return self


class OpenClipBackbone(Backbone):
    """The CLIP image tower plus the text tower for head init; features after its projection or before it."""

    Params = OpenClipParams
    description = "open_clip image encoder; head initialised from its text embeddings"
    params: OpenClipParams

    def load(self, num_classes: int) -> LoadedBackbone:
        import open_clip

        from ltsoups.io.safetensors import CheckpointError, load_tensors
        from ltsoups.peft.adapters import apply_peft
        from ltsoups.plugins.open_clip_text import OpenClipTextEncoder

        weights = self._local_weights()
        if weights is None:
            model = self._create(self.params.pretrained)
        else:
            model = self._create(None)
            tensors = load_tensors(weights)
            mismatch = _shapes(model.state_dict()).first_mismatch(_shapes(tensors))
            if mismatch is not None:
                raise CheckpointError(f"{weights}: not weights of open_clip model {self.params.model!r}: {mismatch}")
            model.load_state_dict(tensors, strict=True)
        model.eval()
        visual = model.visual
        model.visual = None  # the image tower is the classifier's from now on; the text tower moves on its own
        back_projection = (
            self._drop_projection(visual) if self.params.features is FeatureSpace.BEFORE_PROJECTION else None
        )
        text = TextTower(OpenClipTextEncoder(model, back_projection), open_clip.get_tokenizer(self.params.model))
        apply_peft(visual, self.params.peft, num_classes, self.params.peft_rank)
        size = visual.image_size
        return LoadedBackbone(
            image_encoder=visual,
            feature_dim=int(visual.output_dim if back_projection is None else back_projection.shape[0]),
            image_size=int(size[0] if isinstance(size, tuple | list) else size),
            mean=tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
            std=tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD),
            text_tower=text,
        )

    def architecture(self, num_classes: int) -> torch.nn.Module:
        from ltsoups.peft.adapters import apply_peft

        visual = self._create(None).visual
        if self.params.features is FeatureSpace.BEFORE_PROJECTION:
            self._drop_projection(visual)
        apply_peft(visual, self.params.peft, num_classes, self.params.peft_rank)
        return visual.eval()

    @property
    def open_clip_model(self) -> str:
        return self.params.model

    @property
    def open_clip_config(self) -> Path | None:
        """The model's config file when open_clip does not ship it (the embedded mini-CLIP's)."""
        from ltsoups.embedded.model import MODEL_CONFIG_PATH, MODEL_NAME

        return MODEL_CONFIG_PATH if self.params.model == MODEL_NAME else None

    @property
    def before_projection(self) -> bool:
        return self.params.features is FeatureSpace.BEFORE_PROJECTION

    def pretrained_state(self) -> dict[str, torch.Tensor]:
        """The whole pretrained CLIP's state dict, image and text towers (what an open_clip export completes)."""
        from ltsoups.io.safetensors import load_tensors

        weights = self._local_weights()
        if weights is not None:
            return load_tensors(weights)
        return self._create(self.params.pretrained).state_dict()

    def _create(self, pretrained: str | None) -> torch.nn.Module:
        """open_clip's ``params.model`` with the weights of tag ``pretrained`` (None: random ones, which a checkpoint
        replaces); a model or tag open_clip does not have is an error naming the field, the value and what it has."""
        import open_clip

        from ltsoups.embedded import register_model_config

        register_model_config()
        name = self.params.model
        if not name.startswith(MODEL_SCHEMAS):
            known, architecture = open_clip.list_models(), name.replace("/", "-")  # open_clip reads ViT-B/16 too
            if architecture not in known:
                raise no_such_model(name, architecture, known, "open_clip")
            if pretrained is not None and not open_clip.get_pretrained_cfg(architecture, pretrained):
                tags = open_clip.list_pretrained_tags_by_model(architecture)
                raise ValueError(
                    f"backbone.params.pretrained: {pretrained!r} is not allowed with model {name!r}: allowed: "
                    + (f"its open_clip tags ({', '.join(tags)}) or " if tags else "")
                    + "a local .safetensors file"
                )
        if pretrained is None:
            with _without_warnings():  # "no pretrained weights": a checkpoint fills them
                return open_clip.create_model(name, pretrained=None)
        return open_clip.create_model(name, pretrained=pretrained, cache_dir=self.params.cache_dir)

    def _drop_projection(self, visual: torch.nn.Module) -> torch.Tensor:
        """Remove the image tower's output projection (a (width, embed) matrix); return a copy of it."""
        import torch

        projection = getattr(visual, "proj", None)
        if not isinstance(projection, torch.nn.Parameter):
            raise ValueError(
                f"features: before-projection needs an open_clip ViT image tower with a `proj` matrix; "
                f"{self.params.model!r} has none"
            )
        visual.proj = None
        return projection.detach().clone()

    def _local_weights(self) -> Path | None:
        if self.params.pretrained == EMBEDDED_TAG:
            from ltsoups.embedded import shipped_weights_path

            return shipped_weights_path()
        candidate = Path(self.params.pretrained).expanduser()
        if candidate.suffix or candidate.exists():
            from ltsoups.io.safetensors import refuse_non_safetensors

            refuse_non_safetensors(candidate)
            return candidate
        return None


def _shapes(tensors: dict[str, torch.Tensor]) -> TensorLayout:
    """Names and shapes only: load_state_dict casts dtypes, so they need not agree."""
    from ltsoups.io.safetensors import TensorLayout

    return TensorLayout({name: (tuple(tensor.shape), "") for name, tensor in tensors.items()})
