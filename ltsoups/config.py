"""The run configuration: params.yaml and CLI overrides, validated by the same pydantic models.

Plugin choices are ``{name, params}`` pairs. Names are checked against the installed plugins and
params against that plugin's own ``Params`` model, once: the validated config holds the typed
params. Every problem is collected and reported at once.
"""

from __future__ import annotations

import re
import string
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from ltsoups.contracts import SearchableMerger, ValidationMetric
from ltsoups.data.stats import ShotThresholds
from ltsoups.plugin_specs import (
    BackboneSpec,
    DatasetSpec,
    LossSpec,
    MergerSpec,
    PluginSpec,
    SamplerSpec,
    registry_from,
)
from ltsoups.provenance import hash_json
from ltsoups.registry import PluginKind, PluginRegistry, installed_registry
from ltsoups.runtime import RuntimeSettings
from ltsoups.schema import SettingsModel
from ltsoups.settings import AugmentSettings, EvaluationSettings, LoopSettings, SearchMode, Selection


class RunnerSpec(PluginSpec):
    kind = PluginKind.RUNNER


class DataConfig(SettingsModel):
    dataset: DatasetSpec = Field(
        default_factory=lambda: DatasetSpec(name="embedded"), description="which dataset plugin provides the splits"
    )
    thresholds: ShotThresholds = Field(ShotThresholds(), description="many/medium/few and head/tail thresholds")


class HeadConfig(SettingsModel):
    scale: float = Field(30.0, gt=0, description="cosine classifier scale s: logits = s * cos(feature, class)")
    templates: tuple[str, ...] = Field(
        ("a photo of a {}.",),
        min_length=1,
        description="prompt templates for the text-initialised head, each with one {} for the class name; "
        "several are averaged (ensemble)",
    )

    @field_validator("templates")
    @classmethod
    def _one_place_for_the_name(cls, templates: tuple[str, ...]) -> tuple[str, ...]:
        for template in templates:
            fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
            if fields not in ([""], ["0"]):
                raise ValueError(f"{template!r} needs exactly one {{}} where the class name goes")
        return templates


class PlanConfig(SettingsModel):
    sampler: SamplerSpec = Field(
        default_factory=lambda: SamplerSpec(name="progressive", params={"rounds": 5, "replicas": 2}),
        description="which members to train on which subsets",
    )


class TrainConfig(LoopSettings):
    """Stage 1: every member's fine-tune (optimiser, schedule, EMA, selection), loss and augmentation."""

    loss: LossSpec = Field(
        default_factory=lambda: LossSpec(name="logit-adjusted"), description="stage-1 loss, prior of the subset"
    )
    augment: AugmentSettings = AugmentSettings()


DEFAULT_LAMBDAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class SearchSettings(SettingsModel):
    """The recursive merger's lambdas and N (a prefix of the factors) chosen on validation (`ltsoups.merge_search`)."""

    enabled: bool = Field(False, description="search instead of using merge.merger.params.lambda and every factor")
    mode: SearchMode = Field(
        SearchMode.LAMBDA_N,
        description="lambda-n: one lambda for all factors, every (lambda, N) of the grid scored; per-factor: one "
        "lambda per factor, by coordinate ascent over the lambdas (sweep 1 picks each in factor order for its "
        "running soup), N the best prefix",
    )
    lambdas: tuple[float, ...] = Field(
        DEFAULT_LAMBDAS,
        min_length=1,
        description="the lambda values tried, in the merger's own convention (merge.merger.params.weights)",
    )
    metric: ValidationMetric = Field(
        ValidationMetric.BALANCED, description="the validation accuracy maximised: balanced, few or overall"
    )
    sweeps: int = Field(
        1,
        ge=1,
        description="per-factor only: sweeps of coordinate ascent at most; 1: each factor's lambda once, in "
        "factor order (as many soups scored as lambda-n); each later sweep re-picks every lambda for the best "
        "prefix's score and the ascent stops after a sweep that changes none",
    )

    @field_validator("lambdas")
    @classmethod
    def _unit_interval(cls, lambdas: tuple[float, ...]) -> tuple[float, ...]:
        outside = [lam for lam in lambdas if not 0.0 <= lam <= 1.0]
        if outside:
            raise ValueError(f"every lambda must lie in [0, 1], got {outside}")
        if len(set(lambdas)) != len(lambdas):
            raise ValueError("each lambda once")
        return tuple(sorted(lambdas))

    @model_validator(mode="after")
    def _sweeps_of_an_ascent(self) -> SearchSettings:
        if self.sweeps != 1 and self.mode is not SearchMode.PER_FACTOR:
            raise ValueError(
                f"sweeps: {self.sweeps} counts the per-factor ascent's sweeps, but mode is {self.mode.value}; "
                "set mode: per-factor, or leave sweeps at 1"
            )
        return self


class MergeConfig(SettingsModel):
    merger: MergerSpec = Field(
        default_factory=lambda: MergerSpec(name="recursive"),  # its params' defaults: lambda 0.7 on the previous merge
        description="how members become one model; recursive: Theta_k = lambda*Theta_(k-1) + (1-lambda)*mean_k",
    )
    fold_lora: bool = Field(
        True,
        description="add each LoRA member's update (A B)^T / r to the weight it adapts before merging, as the "
        "authors do (the soup is a plain encoder checkpoint); false: average A, B and the weights separately",
    )
    search: SearchSettings = Field(
        SearchSettings(), description="choose the lambdas and N on the validation split (`ltsoups merge --search`)"
    )

    @model_validator(mode="after")
    def _search_has_a_lambda(self, info: ValidationInfo) -> MergeConfig:
        if self.search.enabled:
            merger = registry_from(info).entry(PluginKind.MERGER, self.merger.name).load()
            if not issubclass(merger, SearchableMerger):  # the one check: the merge stage relies on it
                raise ValueError(
                    f"merge.search.enabled: true searches the recursive merger's lambda and N, but "
                    f"merge.merger.name is {self.merger.name!r}; use recursive (any within-factor step), or no search"
                )
        return self


class HeadInit(str, Enum):
    MERGED = "merged"
    RANDOM = "random"


class HeadTraining(str, Enum):
    CLASS_VECTORS = "class-vectors"
    CLASS_SCALE = "class-scale"


class RetrainHeadConfig(LoopSettings):
    """Stage 2 (CR): backbone frozen, head retrained on the full training set."""

    enabled: bool = Field(True, description="run classifier re-training after the merge")
    head_init: HeadInit = Field(
        HeadInit.MERGED,
        description="merged: CR starts from the merged head (the authors' code; the paper's 'retrain'); "
        "random: fresh random class vectors (Kang et al.'s cRT re-initialises the classifier)",
    )
    trains: HeadTraining = Field(
        HeadTraining.CLASS_VECTORS,
        description="class-vectors: the head's class vectors train; class-scale: Kang et al.'s LWS, the class "
        "vectors stay and a factor per class trains, from 1: logits_c = f_c * scale * cos(feature, w_c)",
    )
    loss: LossSpec = Field(
        default_factory=lambda: LossSpec(name="logit-adjusted"), description="stage-2 loss, full-data prior"
    )
    augment: AugmentSettings = Field(
        AugmentSettings(), description="off (enabled: false): features are computed once and cached (fast)"
    )

    @model_validator(mode="after")
    def _class_scale_keeps_the_vectors(self) -> RetrainHeadConfig:
        if self.trains is HeadTraining.CLASS_SCALE and self.head_init is HeadInit.RANDOM:
            raise ValueError(
                "trains: class-scale (LWS) scales the class vectors it is given and never trains them, but "
                "head_init is random: use head_init merged, or trains class-vectors (cRT)"
            )
        return self


class TrackingConfig(SettingsModel):
    experiment: str = Field("ltsoups", min_length=1, description="MLflow experiment name")
    uri: str | None = Field(
        None, min_length=1, description="MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db"
    )
    enabled: bool = Field(True, description="log runs to MLflow")
    # `register` is a method of every pydantic model (ABC.register): the attribute takes another name.
    registered_model: str | None = Field(
        None,
        alias="register",
        min_length=1,
        description="registered model that each evaluation's final classifier becomes a new version of "
        "(created on first use); default: logged on the pipeline's run, not registered",
    )

    @model_validator(mode="after")
    def _register_needs_tracking(self) -> TrackingConfig:
        if self.registered_model is not None and not self.enabled:
            raise ValueError(
                f"tracking.register: {self.registered_model!r} registers the model that tracking logs, but "
                "tracking.enabled is false; enable tracking or leave register unset"
            )
        return self


class CompareConfig(SettingsModel):
    """`ltsoups compare`'s protocol: how many runs of every method, and what changes from one run to the next."""

    seeds: int = Field(3, ge=1, description="S: runs at seed, seed + 1, ..., seed + S - 1 (the --seeds default)")
    vary_with_seed: tuple[str, ...] = Field(
        (),
        description="other integer keys that move with `seed`: run i sets each to its value + i, e.g. "
        "data.dataset.params.seed for a new embedded world (which classes are large) per run; every method of "
        "one run still sees the same data",
    )


class LtSoupsConfig(SettingsModel):
    """Everything a run depends on, grouped by pipeline stage."""

    seed: int = Field(0, ge=0, description="one seed for subsets, data order, augmentation and init")
    preset: str | None = Field(
        None,
        description="named profile: under this file's keys, or over them when given with --set (see ltsoups.presets)",
    )
    runtime: RuntimeSettings = Field(
        RuntimeSettings(), description="device, precision and loader workers of every stage (not part of any hash)"
    )
    runner: RunnerSpec = Field(
        default_factory=lambda: RunnerSpec(name="local"),
        description="how `train-members` and `run` train the members: local (one after another in this process) "
        "or ray (in parallel on a Ray cluster); same bits either way, so not part of any hash",
    )
    data: DataConfig = DataConfig()
    backbone: BackboneSpec = Field(
        default_factory=lambda: BackboneSpec(name="open-clip"), description="the pretrained model theta_0 comes from"
    )
    head: HeadConfig = HeadConfig()
    evaluation: EvaluationSettings = Field(
        EvaluationSettings(),
        description="how val and test images are predicted (crop, test-time ensembling), for every method",
    )
    plan: PlanConfig = PlanConfig()
    train: TrainConfig = TrainConfig()
    merge: MergeConfig = MergeConfig()
    retrain_head: RetrainHeadConfig = RetrainHeadConfig()
    tracking: TrackingConfig = TrackingConfig()
    compare: CompareConfig = CompareConfig()
    workdir: str = Field("outputs", min_length=1, description="where stage outputs are written")
    members: tuple[str, ...] | None = Field(
        None,
        description="the member ids dvc.yaml trains (one train-member stage each); checked against the plan "
        "by `ltsoups validate` and `ltsoups prepare`; unset: no DVC pipeline, no check",
    )

    def section_hash(self, *sections: str) -> str:
        """Hash of the named top-level sections: what a stage's output depends on."""
        return hash_json(self.hashed_sections(*sections))

    def hashed_sections(self, *sections: str) -> dict[str, Any]:
        """The named top-level sections as `section_hash` hashes them.

        A training section that keeps its best validation snapshot (selection best-val) depends on how
        validation is predicted too: the ``evaluation`` section then joins its hash. With the default
        final selection it does not, so changing how tests are scored never makes members stale.
        """
        dumped = self.model_dump(mode="json", by_alias=True)
        hashed = {name: dumped[name] for name in sections}
        for name in sections:
            loop = getattr(self, name)
            if isinstance(loop, LoopSettings) and loop.selection.mode is Selection.BEST_VAL:
                hashed[f"{name}.selection:evaluation"] = dumped["evaluation"]
        return hashed


def plugin_locations(model: type[BaseModel] = LtSoupsConfig, prefix: str = "") -> Iterator[tuple[str, PluginKind]]:
    """Every plugin choice of the schema as (dotted location, kind), found by walking the models' fields."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, PluginSpec):
            yield f"{prefix}{name}", annotation.kind
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from plugin_locations(annotation, f"{prefix}{name}.")


# ------------------------------------------------------------------------------------------ issues


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


_NUMBER_ERRORS = frozenset({"int_type", "float_type"})


def _issues_from_validation(
    err: ValidationError, carried: dict[str, CarriedParam], tree: dict[str, Any], registry: PluginRegistry
) -> list[ConfigIssue]:
    issues = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input", _NO_VALUE)
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(item["loc"], tree, registry)
            message = f"unknown key; allowed: {', '.join(allowed)}" if allowed else "unknown key"
        elif item["type"] == "missing" or (item["type"] == "value_error" and isinstance(value, dict)):
            value = _NO_VALUE  # a required key, or a rule across a section's keys: the message says what
        elif isinstance(value, bool) and item["type"] in _NUMBER_ERRORS:
            message += " (YAML reads yes/no, on/off and true/false as booleans; write a number)"
        if loc in carried:
            message += f" ({carried[loc].explain()})"
        issues.append(ConfigIssue(loc, value, message))
    return issues


def _allowed_keys(location: Sequence[str | int], tree: Any, registry: PluginRegistry) -> list[str]:
    """The keys of the section holding ``location``: its model's fields, or the plugin's params ([]: unknown)."""
    model: type[BaseModel] | None = LtSoupsConfig
    node = tree
    for part in location[:-1]:
        if model is None or not isinstance(node, dict):
            return []
        if issubclass(model, PluginSpec) and part == "params":
            try:
                model = registry.params_model(model.kind, str(node.get("name")))
            except ValueError:  # an unknown plugin: its own issue says so
                return []
        else:
            field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
            model = None if field is None else _model_in(field.annotation)
        node = node.get(part)
    return [] if model is None else [field.alias or name for name, field in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model an annotation holds (``Section``, ``Section | None``), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


# ------------------------------------------------------------------------------------------ layers


class LayerRole(Enum):
    DEFAULTS = "defaults"
    PRESET = "preset"
    PARAMS_FILE = "params file"
    OVERRIDE = "override"
    """--set, a method's settings, a comparison's run: anything that comes after the params file."""


@dataclass(frozen=True)
class ConfigLayer:
    """One source of settings, in the order they apply: defaults, preset, params file, each --set."""

    source: str
    tree: dict[str, Any]
    user: bool
    """Written by the user (a params file, --set), as opposed to ltsoups' defaults and presets."""
    role: LayerRole = LayerRole.OVERRIDE


@dataclass(frozen=True)
class CarriedParam:
    """A plugin param the user wrote for one plugin and a later layer kept for another."""

    location: str
    source: str
    old_plugin: str
    new_plugin: str

    def explain(self) -> str:
        spec = self.location.rsplit(".params.", 1)[0]
        return (
            f"set in {self.source} for {self.old_plugin!r} and kept when {spec}.name became {self.new_plugin!r}; "
            f"to choose {self.new_plugin!r} with other params, give both at once: "
            f"--set {spec}='{{name: {self.new_plugin}, params: {{...}}}}'"
        )


@dataclass
class _Merge:
    """Layers folded over each other; a plugin's params follow the rules of ``_merge_plugin``."""

    plugins: frozenset[str]
    tree: dict[str, Any] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)
    """Plugin param location -> the user layer that wrote it."""
    carried: dict[str, CarriedParam] = field(default_factory=dict)

    def add(self, layer: ConfigLayer) -> None:
        self.tree = self._merge(self.tree, layer.tree, "", layer)

    def _merge(self, below: dict[str, Any], top: dict[str, Any], prefix: str, layer: ConfigLayer) -> dict[str, Any]:
        merged = dict(below)
        for key, value in top.items():
            location, under = f"{prefix}{key}", merged.get(key)
            if isinstance(value, dict) and isinstance(under, dict):
                if location in self.plugins:
                    merged[key] = self._merge_plugin(under, value, location, layer)
                else:
                    merged[key] = self._merge(under, value, f"{location}.", layer)
            else:
                merged[key] = value
                if location in self.plugins and isinstance(value, dict):
                    self._record(location, value.get("params"), layer)
        return merged

    def _merge_plugin(
        self, below: dict[str, Any], top: dict[str, Any], location: str, layer: ConfigLayer
    ) -> dict[str, Any]:
        """Same plugin: params merge key by key. Another plugin named with its params: they replace the
        old ones. Another plugin named alone: the params a user wrote stay (and must fit the new plugin);
        the params of ltsoups' defaults and presets belonged to the old plugin and go."""
        old, new = below.get("name"), top.get("name", below.get("name"))
        params = below.get("params") if isinstance(below.get("params"), dict) else {}
        if new != old:
            prefix = f"{location}.params."
            kept = {key: self.written[prefix + key] for key in params if prefix + key in self.written}
            earlier = {name: self.carried.pop(name) for name in list(self.carried) if name.startswith(prefix)}
            for name in [name for name in self.written if name.startswith(prefix)]:
                del self.written[name]
            params = {} if "params" in top else {key: params[key] for key in kept}
            for key in params:
                name, first = prefix + key, earlier.get(prefix + key)
                self.written[name] = kept[key]
                self.carried[name] = CarriedParam(name, kept[key], first.old_plugin if first else str(old), str(new))
        top_params = top.get("params")
        if isinstance(top_params, dict):
            params = self._merge(params, top_params, f"{location}.params.", layer)
            self._record(location, top_params, layer)
        elif "params" in top:
            params = top_params  # not a mapping: the schema check reports it
        return {**below, **{k: v for k, v in top.items() if k != "params"}, "params": params}

    def _record(self, location: str, params: Any, layer: ConfigLayer) -> None:
        if layer.user and isinstance(params, dict):
            for key in params:
                self.written[f"{location}.params.{key}"] = layer.source
                self.carried.pop(f"{location}.params.{key}", None)


# ------------------------------------------------------------------------------------------ reading


class ParamsLoader(yaml.SafeLoader):
    """YAML as ltsoups reads params: a key twice in one mapping is an error naming both lines, and
    ``3e-4`` is a number as YAML 1.2 (and DVC) read it, not the string PyYAML's YAML 1.1 makes of it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: keys written beside it override the merged ones, as YAML says
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, Hashable) and key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first at line {first_line[key]})", key_node.start_mark
                )
            if isinstance(key, Hashable):
                first_line[key] = line
        return super().construct_mapping(node, deep)


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """``text`` parsed as ltsoups reads params (see `ParamsLoader`); yaml.YAMLError when it is malformed."""
    return yaml.load(text, Loader=ParamsLoader)  # a SafeLoader: builds plain data only


def parse_override(text: str) -> tuple[list[str], Any]:
    """'merge.merger.params.lambda=0.5' -> (['merge', 'merger', 'params', 'lambda'], 0.5)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            [ConfigIssue("--set", text, "expected KEY=VALUE, e.g. merge.merger.params.lambda=0.5")], "CLI"
        )
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        issue = ConfigIssue("--set", text, f"the value is malformed YAML: {_yaml_problem(err)}")
        raise ConfigError([issue], "CLI") from err
    return key.strip().split("."), value


def override_layer(text: str) -> ConfigLayer:
    """One ``--set KEY=VALUE`` as a layer of its own."""
    path, value = parse_override(text)
    nested: Any = value
    for part in reversed(path):
        nested = {part: nested}
    return ConfigLayer(f"--set {text}", nested, user=True)


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
        raw = load_yaml(Path(path).read_text())
    except OSError as err:
        raise ConfigError([ConfigIssue(str(path), _NO_VALUE, f"cannot read file ({err.strerror})")], str(path)) from err
    except UnicodeDecodeError as err:
        issue = ConfigIssue(str(path), _NO_VALUE, f"not a YAML text file (byte {err.start} is not UTF-8)")
        raise ConfigError([issue], str(path)) from err
    except yaml.YAMLError as err:
        issue = ConfigIssue(str(path), _NO_VALUE, f"malformed YAML: {_yaml_problem(err)}")
        raise ConfigError([issue], str(path)) from err
    if raw is None:  # an empty file (or only comments): every default
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(str(path), raw, "the top level must be a mapping")], str(path))
    return raw


def _preset_layer(name: Any) -> ConfigLayer:
    from ltsoups.presets import available_presets, preset_path

    if name not in available_presets():
        allowed = ", ".join(available_presets())
        raise ConfigError([ConfigIssue("preset", name, f"unknown preset; available: {allowed}")], "preset")
    return ConfigLayer(f"preset {name}", read_params_file(preset_path(name)), user=False, role=LayerRole.PRESET)


def stacked_layers(layers: Sequence[ConfigLayer]) -> list[ConfigLayer]:
    """Every layer in the order it applies: the defaults, then ``layers`` with the preset they name in its place.

    The last layer naming a preset wins. Named in a params file, the preset lies right under that file
    (the file's keys win); named anywhere after it (``--set preset=NAME``), right above the params file
    (the preset's keys win over the file's, and a method's settings and every --set still win over it).
    """
    defaults = ConfigLayer(
        "defaults", LtSoupsConfig().model_dump(mode="json", by_alias=True), user=False, role=LayerRole.DEFAULTS
    )
    naming = next((i for i in reversed(range(len(layers))) if layers[i].tree.get("preset")), None)
    if naming is None:
        return [defaults, *layers]
    files = [i for i in range(naming + 1) if layers[i].role is LayerRole.PARAMS_FILE]
    place = naming if layers[naming].role is LayerRole.PARAMS_FILE else (files[-1] + 1 if files else 0)
    return [defaults, *layers[:place], _preset_layer(layers[naming].tree["preset"]), *layers[place:]]


def merged_tree(layers: Sequence[ConfigLayer]) -> tuple[dict[str, Any], dict[str, CarriedParam]]:
    """The settings ``stacked_layers`` gives, folded into one tree (not yet validated), and the carried params."""
    merge = _Merge(frozenset(location for location, _ in plugin_locations()))
    for layer in stacked_layers(layers):
        merge.add(layer)
    return merge.tree, merge.carried


def validate_layers(
    layers: Sequence[ConfigLayer], source: str, registry: PluginRegistry | None = None
) -> LtSoupsConfig:
    """The user's layers over the preset they name and the defaults, validated; or ConfigError."""
    tree, carried = merged_tree(layers)
    registry = registry or installed_registry()
    try:
        return LtSoupsConfig.model_validate(tree, context={"registry": registry})
    except ValidationError as err:
        raise ConfigError(_issues_from_validation(err, carried, tree, registry), source) from err


def user_layers(path: Path | None, overrides: Sequence[str] = ()) -> tuple[list[ConfigLayer], str]:
    """The params file (if any), then each ``--set`` override, as layers; and a name for their source."""
    layers = [ConfigLayer(str(path), read_params_file(path), True, LayerRole.PARAMS_FILE)] if path is not None else []
    layers += [override_layer(text) for text in overrides]
    source = str(path) if path is not None else "defaults"
    if overrides:
        source += " + --set"
    return layers, source


def load_config(
    path: Path | None, overrides: Sequence[str] = (), registry: PluginRegistry | None = None
) -> LtSoupsConfig:
    """params file (if any), then each ``--set`` override in order."""
    layers, source = user_layers(path, overrides)
    return validate_layers(layers, source, registry)


def sampler_shortcut(rounds: int | None, replicas: int | None) -> list[str]:
    """CLI --rounds/--replicas as overrides of the sampler params."""
    overrides = []
    if rounds is not None:
        overrides.append(f"plan.sampler.params.rounds={rounds}")
    if replicas is not None:
        overrides.append(f"plan.sampler.params.replicas={replicas}")
    return overrides
