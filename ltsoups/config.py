"""The run configuration: params.yaml and CLI overrides, validated by the same pydantic models.

Plugin choices are ``{name, params}`` pairs. Names are checked against the installed plugins and
params against that plugin's own ``Params`` model; every problem is collected and reported at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ltsoups.data.stats import ShotThresholds
from ltsoups.provenance import hash_json
from ltsoups.registry import PluginError, PluginKind, PluginRegistry, installed_registry


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginSpec(Strict):
    """A plugin by name, with the parameters its own Params model accepts."""

    name: str = Field(min_length=1, description="a registered plugin name (see `ltsoups plugins list`)")
    params: dict[str, Any] = Field(default_factory=dict, description="validated by the plugin's Params model")


class DataConfig(Strict):
    dataset: PluginSpec = Field(PluginSpec(name="embedded"), description="which dataset plugin provides the splits")
    thresholds: ShotThresholds = Field(ShotThresholds(), description="many/medium/few and head/tail thresholds")


class HeadConfig(Strict):
    scale: float = Field(30.0, gt=0, description="cosine classifier scale s: logits = s * cos(feature, class)")
    templates: tuple[str, ...] = Field(
        ("a photo of a {}.",),
        min_length=1,
        description="prompt templates for the text-initialised head; several are averaged (ensemble)",
    )


class EmaInit(str, Enum):
    THETA0 = "theta0"
    FIRST_STEP = "first-step"


class Selection(str, Enum):
    FINAL = "final"
    BEST_VAL = "best-val"


class Precision(str, Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class OptimConfig(Strict):
    """AdamW with linear warmup then cosine decay to a floor; an EMA of the weights is the output."""

    lr: float = Field(3e-4, gt=0, description="peak learning rate (paper: 3e-4; authors' script: 3e-5)")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW decoupled weight decay")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    batch_size: int = Field(128, ge=1, description="samples per optimizer step")
    micro_batch_size: int | None = Field(
        None, ge=1, description="split each batch into micro-batches (gradient accumulation); default: no split"
    )
    epochs: float = Field(10, gt=0, description="passes over the member's own subset")
    min_steps: int = Field(100, ge=1, description="train at least this many steps (authors' code: 100)")
    warmup_min_steps: int = Field(100, ge=0, description="warmup lasts max(warmup_min_steps, warmup_fraction*steps)")
    warmup_fraction: float = Field(0.01, ge=0, le=1, description="see warmup_min_steps")
    final_lr_fraction: float = Field(0.1, ge=0, le=1, description="cosine decays to this fraction of lr")
    ema_decay: float = Field(0.99, ge=0, lt=1, description="EMA decay per step (paper: mu = 1 - decay = 0.01)")
    ema_init: EmaInit = Field(
        EmaInit.THETA0,
        description="theta0: EMA starts at the zero-shot weights (paper, Algorithm 1); "
        "first-step: EMA copies the weights after step 1 (authors' code, torch AveragedModel)",
    )
    selection: Selection = Field(
        Selection.FINAL,
        description="final: keep the last EMA weights (paper); best-val: keep the best of `val_snapshots` "
        "EMA snapshots by validation balanced accuracy (authors' code)",
    )
    val_snapshots: int = Field(5, ge=1, description="with selection=best-val: how many evaluations")
    crop_scale: tuple[float, float] = Field((0.08, 1.0), description="RandomResizedCrop area range (train)")
    hflip: bool = Field(True, description="random horizontal flips (train)")
    precision: Precision = Field(Precision.FP32, description="autocast precision on GPU; CPU always runs fp32")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda' or 'cuda:N'")
    workers: int = Field(0, ge=0, description="dataloader worker processes")
    resume_every: int = Field(50, ge=1, description="write a resumable state every this many steps")

    @model_validator(mode="after")
    def _consistent(self) -> OptimConfig:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of micro_batch_size")
        return self


class PlanConfig(Strict):
    sampler: PluginSpec = Field(
        PluginSpec(name="progressive", params={"rounds": 5, "replicas": 2}),
        description="which members to train on which subsets",
    )


class TrainConfig(Strict):
    loss: PluginSpec = Field(PluginSpec(name="logit-adjusted"), description="stage-1 loss, prior of the subset")
    optim: OptimConfig = OptimConfig()


class MergeConfig(Strict):
    merger: PluginSpec = Field(
        PluginSpec(name="recursive", params={"lambda": 0.7, "weights": "previous"}),
        description="how members become one model; recursive: Theta_k = lambda*Theta_(k-1) + (1-lambda)*mean_k",
    )


class RetrainHeadConfig(Strict):
    """Stage 2 (CR): backbone frozen, head retrained on the full training set."""

    enabled: bool = Field(True, description="run classifier re-training after the merge")
    loss: PluginSpec = Field(PluginSpec(name="logit-adjusted"), description="stage-2 loss, full-data prior")
    augment: bool = Field(True, description="train augmentation; off: features are computed once and cached")
    optim: OptimConfig = OptimConfig()


class TrackingConfig(Strict):
    experiment: str = Field("ltsoups", min_length=1, description="MLflow experiment name")
    uri: str | None = Field(
        None, description="MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db"
    )
    enabled: bool = Field(True, description="log runs to MLflow")


class LtSoupsConfig(Strict):
    """Everything a run depends on, grouped by pipeline stage."""

    seed: int = Field(0, ge=0, description="one seed for subsets, data order, augmentation and init")
    preset: str | None = Field(None, description="named profile deep-merged under this file (see ltsoups.presets)")
    data: DataConfig = DataConfig()
    backbone: PluginSpec = Field(PluginSpec(name="open-clip"), description="the pretrained model theta_0 comes from")
    head: HeadConfig = HeadConfig()
    plan: PlanConfig = PlanConfig()
    train: TrainConfig = TrainConfig()
    merge: MergeConfig = MergeConfig()
    retrain_head: RetrainHeadConfig = RetrainHeadConfig()
    tracking: TrackingConfig = TrackingConfig()
    workdir: str = Field("outputs", min_length=1, description="where stage outputs are written")
    members: tuple[str, ...] | None = Field(
        None,
        description="the member ids dvc.yaml trains (one train-member stage each); checked against the plan "
        "by `ltsoups validate` and `ltsoups prepare`; unset: no DVC pipeline, no check",
    )

    def section_hash(self, *sections: str) -> str:
        """Hash of the named top-level sections: what a stage's output depends on."""
        dumped = self.model_dump(mode="json", by_alias=True)
        return hash_json({name: dumped[name] for name in sections})


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where it is, the value found, and what is allowed."""

    location: str
    value: Any
    message: str

    def __str__(self) -> str:
        if self.value is _NO_VALUE:
            return f"{self.location}: {self.message}"
        return f"{self.location}: {self.value!r} is not allowed: {self.message}"


_NO_VALUE = object()
"""The issue is about a whole file or section (or a key that is absent): no single value to show."""


class ConfigError(ValueError):
    def __init__(self, issues: Sequence[ConfigIssue], source: str) -> None:
        self.issues = list(issues)
        self.source = source
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"{len(self.issues)} problem(s) in {source}:\n{lines}")


def _issues_from_validation(err: ValidationError, prefix: str = "") -> list[ConfigIssue]:
    issues = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        value = item.get("input", _NO_VALUE)
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing" or (item["type"] == "value_error" and isinstance(value, dict)):
            value = _NO_VALUE  # a required key, or a rule across a section's keys: the message says what
            message = message.removeprefix("Value error, ")
        issues.append(ConfigIssue(f"{prefix}{loc}" if loc else prefix.rstrip("."), value, message))
    return issues


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, key by key; choosing another plugin name drops the old plugin's params."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        switches_plugin = (
            isinstance(below, dict)
            and isinstance(value, dict)
            and value.get("name", below.get("name")) != below.get("name")
        )
        if isinstance(value, dict) and isinstance(below, dict) and not switches_plugin:
            merged[key] = _deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> tuple[list[str], Any]:
    """'merge.merger.params.lambda=0.5' -> (['merge', 'merger', 'params', 'lambda'], 0.5)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            [ConfigIssue("--set", text, "expected KEY=VALUE, e.g. merge.merger.params.lambda=0.5")], "CLI"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        issue = ConfigIssue("--set", text, f"the value is malformed YAML: {_yaml_problem(err)}")
        raise ConfigError([issue], "CLI") from err
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    result = dict(raw)
    for text in overrides:
        path, value = parse_override(text)
        nested: dict[str, Any] = value
        for part in reversed(path):
            nested = {part: nested}
        result = _deep_merge(result, nested)
    return result


def _yaml_problem(err: yaml.YAMLError) -> str:
    """Where the YAML parser gave up and why, e.g. "line 3, column 1: expected ',' or '}'"."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if mark is None or problem is None:
        return str(err)
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    started = f" ({context} started at line {context_mark.line + 1})" if context and context_mark else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}{started}"


def read_params_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise ConfigError([ConfigIssue(str(path), _NO_VALUE, f"cannot read file ({err.strerror})")], str(path)) from err
    except UnicodeDecodeError as err:
        issue = ConfigIssue(str(path), _NO_VALUE, f"not a YAML text file (byte {err.start} is not UTF-8)")
        raise ConfigError([issue], str(path)) from err
    except yaml.YAMLError as err:
        issue = ConfigIssue(str(path), _NO_VALUE, f"malformed YAML: {_yaml_problem(err)}")
        raise ConfigError([issue], str(path)) from err
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(str(path), raw, "the top level must be a mapping")], str(path))
    return raw


def _with_preset(raw: dict[str, Any]) -> dict[str, Any]:
    name = raw.get("preset")
    if not name:
        return raw
    from ltsoups.presets import available_presets, preset_path

    if name not in available_presets():
        allowed = ", ".join(available_presets())
        raise ConfigError([ConfigIssue("preset", name, f"unknown preset; available: {allowed}")], "preset")
    return _deep_merge(read_params_file(preset_path(name)), raw)


_PLUGIN_LOCATIONS: tuple[tuple[str, PluginKind], ...] = (
    ("data.dataset", PluginKind.DATASET),
    ("backbone", PluginKind.BACKBONE),
    ("plan.sampler", PluginKind.SAMPLER),
    ("train.loss", PluginKind.LOSS),
    ("merge.merger", PluginKind.MERGER),
    ("retrain_head.loss", PluginKind.LOSS),
)


def _node(tree: dict[str, Any], location: str) -> Any:
    for part in location.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(part)
    return tree


def _plugin_issues(
    merged: dict[str, Any], registry: PluginRegistry
) -> tuple[list[ConfigIssue], dict[str, dict[str, Any]]]:
    """Problems with each plugin choice, and the params of the valid ones with defaults filled in."""
    issues: list[ConfigIssue] = []
    resolved: dict[str, dict[str, Any]] = {}
    for location, kind in _PLUGIN_LOCATIONS:
        spec = _node(merged, location)
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            continue  # the schema check reports malformed specs
        try:
            params = registry.validate_params(kind, spec["name"], spec.get("params") or {})
        except PluginError as err:
            issues.append(ConfigIssue(f"{location}.name", spec["name"], str(err)))
        except ValidationError as err:
            issues.extend(_issues_from_validation(err, f"{location}.params."))
        else:
            resolved[location] = params.model_dump(mode="json", by_alias=True)
    return issues, resolved


def validate_config(
    raw: dict[str, Any], source: str = "params", registry: PluginRegistry | None = None
) -> LtSoupsConfig:
    """A validated config with plugin params resolved to their full defaults, or ConfigError."""
    merged = _deep_merge(LtSoupsConfig().model_dump(mode="json", by_alias=True), _with_preset(raw))
    issues, resolved = _plugin_issues(merged, registry or installed_registry())
    try:
        LtSoupsConfig.model_validate(merged)
    except ValidationError as err:
        issues = _issues_from_validation(err) + issues
    if issues:
        raise ConfigError(issues, source)
    for location, params in resolved.items():
        _node(merged, location)["params"] = params
    return LtSoupsConfig.model_validate(merged)


def load_config(
    path: Path | None, overrides: Sequence[str] = (), registry: PluginRegistry | None = None
) -> LtSoupsConfig:
    raw = read_params_file(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    if overrides:
        source += " + --set"
    return validate_config(apply_overrides(raw, overrides), source, registry)


def sampler_shortcut(rounds: int | None, replicas: int | None) -> list[str]:
    """CLI --rounds/--replicas as overrides of the sampler params."""
    overrides = []
    if rounds is not None:
        overrides.append(f"plan.sampler.params.rounds={rounds}")
    if replicas is not None:
        overrides.append(f"plan.sampler.params.replicas={replicas}")
    return overrides
