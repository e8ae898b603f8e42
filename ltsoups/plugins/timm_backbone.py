"""Non-CLIP backbone: any timm image model (ImageNet ViTs, DINOv2, ...); the head starts from class means."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ltsoups.contracts import Backbone, LoadedBackbone, PluginParams
from ltsoups.plugins.model_names import MODEL_SCHEMAS, no_such_model

if TYPE_CHECKING:  # torch and timm load with the model, not with the plugin's params
    import torch

HUB = "hub"


class TimmParams(PluginParams):
    model: str = Field(
        "vit_base_patch16_224.augreg_in21k",
        min_length=1,
        description="timm model name with its pretrained tag, e.g. vit_small_patch14_dinov2.lvd142m",
    )
    pretrained: str = Field(
        HUB,
        min_length=1,
        description="'hub': the tag's weights from the Hugging Face hub (downloads on first use), "
        "or a local .safetensors file with the weights of that model (pickle formats are refused)",
    )
    image_size: int | None = Field(
        None, ge=16, description="input resolution for models that take img_size (ViTs); default: the model's"
    )
    cache_dir: str | None = Field(None, description="where timm caches downloaded weights")


class TimmBackbone(Backbone):
    """A timm model without its classifier (pooled features); no text tower, so heads init from class means."""

    Params = TimmParams
    description = "timm image model (e.g. ImageNet ViT, DINOv2); head initialised from class means"
    params: TimmParams

    def load(self, num_classes: int) -> LoadedBackbone:
        import timm

        model = self._create()
        model.eval()
        config = timm.data.resolve_model_data_config(model)
        mean, std = config["mean"], config["std"]
        return LoadedBackbone(
            image_encoder=model,
            feature_dim=int(getattr(model, "head_hidden_size", None) or model.num_features),
            image_size=self.params.image_size or int(config["input_size"][-1]),
            mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            std=(float(std[0]), float(std[1]), float(std[2])),
            text_tower=None,
        )

    @property
    def timm_model(self) -> str:
        return self.params.model

    @property
    def timm_arguments(self) -> dict[str, Any]:
        """What `timm.create_model` takes besides the name to build this architecture."""
        return {} if self.params.image_size is None else {"img_size": self.params.image_size}

    def architecture(self, num_classes: int) -> torch.nn.Module:
        import timm

        self._require_known_model()
        return timm.create_model(self.params.model, pretrained=False, num_classes=0, **self.timm_arguments).eval()

    def _require_known_model(self) -> None:
        """timm has ``params.model``: its architecture, and its pretrained tag when it names one."""
        import timm

        name = self.params.model
        if name.startswith(MODEL_SCHEMAS):
            return
        architecture, _, tag = name.partition(".")
        if not timm.is_model(architecture):
            raise no_such_model(name, architecture, timm.list_models(), "timm")
        if not tag:
            return
        tagged = timm.list_pretrained(f"{architecture}.*")
        if name not in tagged:
            tags = ", ".join(entry.partition(".")[2] for entry in tagged) or "none"
            raise ValueError(
                f"backbone.params.model: {name!r} is not allowed: timm has no weights tagged {tag!r} for "
                f"{architecture}; its tags: {tags}"
            )

    def _create(self) -> torch.nn.Module:
        import timm

        self._require_known_model()
        size: dict[str, Any] = {} if self.params.image_size is None else {"img_size": self.params.image_size}
        if self.params.pretrained == HUB:
            return timm.create_model(
                self.params.model, pretrained=True, num_classes=0, cache_dir=self.params.cache_dir, **size
            )
        from ltsoups.io.safetensors import CheckpointError, load_tensors

        path = Path(self.params.pretrained).expanduser()
        tensors = load_tensors(path)
        classes = self._classifier_rows(tensors)
        # timm relaxes strictness whenever num_classes differs from the weights' own: create the model with
        # the file's classifier so every tensor must fit, then drop the classifier for pooled features.
        try:
            model = timm.create_model(
                self.params.model,
                pretrained=True,
                num_classes=classes,
                pretrained_cfg_overlay={"state_dict": tensors, "num_classes": classes},
                **size,
            )
        except RuntimeError as err:
            raise CheckpointError(f"{path}: the weights do not fit timm model {self.params.model!r}: {err}") from err
        model.reset_classifier(0)
        return model

    def _classifier_rows(self, tensors: dict[str, torch.Tensor]) -> int:
        """Classes of the classifier stored in the file, 0 when it holds the backbone alone."""
        import timm

        classifier = timm.models.get_pretrained_cfg_value(self.params.model, "classifier") or "head"
        names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        weight = tensors.get(f"{names[0]}.weight")
        return 0 if weight is None else int(weight.shape[0])
