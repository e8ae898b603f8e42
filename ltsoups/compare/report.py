"""The comparison report, computed from the runs' saved logits (and recorded costs and weight changes) alone.

Per method: mean, std and 95% t-interval over seeds of accuracy (overall, balanced, many, medium, few),
calibration after the val-fitted temperature, weight change and training cost. Per method against the
reference: the paired difference in balanced and few-shot accuracy on the same test images, with the
paired stratified bootstrap's interval and p-value (``ltsoups.analysis.statistics`` says exactly how).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltsoups.analysis.calibration import GROUPS, calibrate
from ltsoups.analysis.statistics import (
    BOOTSTRAP_SEED,
    CONFIDENCE,
    RESAMPLES,
    SeedSummary,
    StratifiedBootstrap,
    accuracy_weights,
    paired_differences,
)
from ltsoups.compare.results import ComparisonSpec, MethodResult
from ltsoups.data.stats import ClassStats, ShotGroup, ShotThresholds, Side
from ltsoups.evaluation import score_predictions
from ltsoups.io.atomic import write_json_atomic, write_text_atomic
from ltsoups.predictions import Predictions, Split
from ltsoups.schema import StrictModel
from ltsoups.workspace import ComparisonWorkspace

ACCURACY = ("overall", "balanced", "many", "medium", "few", "head", "tail")
"""head and tail: the paper's split (Table 1, Figure 2), more than ``data.thresholds.head`` training images or not"""
_GROUPED = tuple(f"{metric}_{group}" for metric in ("nll", "ece", "brier") for group in GROUPS)
CALIBRATION = ("temperature", "nll", "ece", "brier", *_GROUPED)
WEIGHT_CHANGE = ("weight_change", "weight_change_relative")
COST = ("trainings", "steps", "samples", "seconds", "peak_memory_bytes")
SEARCH_COST = ("search_folds", "search_val_passes")
"""What a method that chooses its merge on validation (``merge.search``) adds: soups folded, validation passes."""
PAIRED = ("balanced", "few", "head", "tail")


class Summary(StrictModel):
    """One number of one method over its seeds."""

    values: tuple[float, ...]
    mean: float
    std: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        summary = SeedSummary.of(values)
        return cls(values=tuple(values), mean=summary.mean, std=summary.std, low=summary.low, high=summary.high)


class MethodSummary(StrictModel):
    method: str
    description: str
    model: str
    seeds: tuple[int, ...]
    metrics: dict[str, Summary]
    """accuracy, calibration and weight change"""
    cost: dict[str, Summary]
    """training cost (``COST``); with a merge chosen on validation, also the search's (``SEARCH_COST``)"""
    members: int
    models_at_inference: int


class PairedRow(StrictModel):
    """metric(method) - metric(reference) on the same test images, over the seeds both have."""

    method: str
    reference: str
    metric: str
    seeds: tuple[int, ...]
    difference: float
    low: float
    high: float
    p_value: float
    per_seed: tuple[float, ...]
    seed_std: float | None
    seed_low: float | None
    seed_high: float | None


class BootstrapSettings(StrictModel):
    resamples: int
    seed: int
    confidence: float
    scheme: str = (
        "test images resampled with replacement within their class, the same resample for both methods and every "
        "seed; statistic: the seed-mean of the per-seed differences; interval: percentiles; p: two-sided, "
        "min(1, 2 min(1 + #{d <= 0}, 1 + #{d >= 0}) / (R + 1))"
    )


class ComparisonReport(StrictModel):
    reference: str
    seeds: tuple[int, ...]
    dataset: str
    test_images: int
    interval: str = "95% Student-t interval over seeds: mean +- t(0.975, S-1) * std / sqrt(S), std with ddof 1"
    bootstrap: BootstrapSettings
    methods: tuple[MethodSummary, ...]
    paired: tuple[PairedRow, ...]
    members_trained: int
    members_used: int
    seconds: float
    code_version: str

    @property
    def seeds_text(self) -> str:
        return f"{len(self.seeds)} seed{'' if len(self.seeds) == 1 else 's'}"


def load_results(root: Path, spec: ComparisonSpec) -> dict[str, list[MethodResult]]:
    """Every method's results, in the spec's method and seed order."""
    found = {}
    for entry in spec.methods:
        paths = [ComparisonWorkspace(root).result(entry.name, seed) for seed in spec.seeds]
        found[entry.name] = [MethodResult.read(path) for path in paths if path.is_file()]
    return found


@dataclass(frozen=True)
class _ScoredRun:
    result: MethodResult
    numbers: dict[str, float]
    correct: np.ndarray
    """per test image: whether the run's model got it right (all the paired statistics need)"""


class _Scorer:
    """Scores runs from their saved logits one at a time (memory: one run's logits), on one set of test labels."""

    def __init__(self, root: Path, spec: ComparisonSpec) -> None:
        self.root = root
        self.thresholds = ShotThresholds.model_validate(spec.base_config["data"]["thresholds"])
        self.train_counts = np.asarray(spec.train_counts)
        self.stats = stats = ClassStats(self.train_counts, self.thresholds)
        self.groups, self.class_groups = stats.groups(), stats.class_groups()
        self.sides = np.array([side.value for side in stats.sides()])
        self.labels: np.ndarray | None = None

    def __call__(self, result: MethodResult) -> _ScoredRun:
        test = Predictions.read(self.root / result.predictions[Split.TEST.value])
        val = Predictions.read(self.root / result.predictions[Split.VAL.value])
        if self.labels is None:
            self.labels = test.labels
        elif not np.array_equal(test.labels, self.labels):
            raise ValueError(
                f"{result.method} seed {result.seed} was scored on other test images than the runs before it: "
                "no paired comparison is possible"
            )
        scores = score_predictions(test.logits.argmax(axis=1), test.labels, self.train_counts, self.thresholds)
        calibration = calibrate(val.logits, val.labels, test.logits, test.labels, self.class_groups)
        per_class = np.asarray(scores.per_class)
        sides = {}
        for side in Side:
            members = (self.sides == side.value) & ~np.isnan(per_class)
            if members.any():
                sides[side.value] = float(per_class[members].mean())
        numbers = {**scores.headline(), **sides, **calibration.as_dict(), **(result.weight_change or {})}
        return _ScoredRun(result, numbers, test.correct)


def build_report(root: Path, resamples: int = RESAMPLES, bootstrap_seed: int = BOOTSTRAP_SEED) -> ComparisonReport:
    """The report of the comparison at ``root``, from its saved logits."""
    spec = ComparisonSpec.read(root)
    score = _Scorer(root, spec)
    scored = {name: [score(result) for result in results] for name, results in load_results(root, spec).items()}
    if score.labels is None:
        raise ValueError(f"the comparison at {root} has no finished run")
    summaries = []
    for entry in spec.methods:
        runs = scored[entry.name]
        if not runs:
            continue
        keys = [key for key in (*ACCURACY, *CALIBRATION, *WEIGHT_CHANGE) if all(key in run.numbers for run in runs)]
        cost = {key: [getattr(run.result.cost, key) for run in runs] for key in COST}
        searches = [run.result.search_cost for run in runs]
        for key in SEARCH_COST:
            cost[key] = [None if s is None else getattr(s, key.removeprefix("search_")) for s in searches]
        summaries.append(
            MethodSummary(
                method=entry.name,
                description=entry.description,
                model=runs[0].result.model,
                seeds=tuple(run.result.seed for run in runs),
                metrics={key: Summary.of([run.numbers[key] for run in runs]) for key in keys},
                cost={key: Summary.of(v) for key, v in cost.items() if None not in v},
                members=runs[0].result.members,
                models_at_inference=runs[0].result.models_at_inference,
            )
        )
    bootstrap = StratifiedBootstrap(score.labels, resamples, bootstrap_seed)
    return ComparisonReport(
        reference=spec.reference,
        seeds=spec.seeds,
        dataset=spec.dataset,
        test_images=len(score.labels),
        bootstrap=BootstrapSettings(resamples=resamples, seed=bootstrap_seed, confidence=CONFIDENCE),
        methods=tuple(summaries),
        paired=_paired(spec, scored, score.labels, score.groups, score.stats.sides(), bootstrap),
        members_trained=spec.members_trained,
        members_used=spec.members_used,
        seconds=spec.seconds,
        code_version=spec.code_version,
    )


def _paired(
    spec: ComparisonSpec,
    scored: dict[str, list[_ScoredRun]],
    labels: np.ndarray,
    groups: list[ShotGroup],
    sides: list[Side],
    bootstrap: StratifiedBootstrap,
) -> tuple[PairedRow, ...]:
    reference = spec.reference
    if not scored.get(reference):
        return ()
    classes = {
        "balanced": np.arange(len(groups)),
        "few": np.array([c for c, group in enumerate(groups) if group is ShotGroup.FEW]),
        **{side.value: np.array([c for c, s in enumerate(sides) if s is side]) for side in Side},
    }
    present = set(np.unique(labels).tolist())
    metrics = [m for m in PAIRED if present & set(classes[m].tolist())]
    weights = [accuracy_weights(labels, classes[m]) for m in metrics]
    by_seed = {run.result.seed: run.correct for run in scored[reference]}
    rows = []
    for entry in spec.methods:
        if entry.name == reference or not scored[entry.name]:
            continue
        mine = {run.result.seed: run.correct for run in scored[entry.name]}
        seeds = tuple(seed for seed in spec.seeds if seed in mine and seed in by_seed)
        if not seeds:
            continue
        differences = paired_differences(
            np.stack([mine[s] for s in seeds]), np.stack([by_seed[s] for s in seeds]), weights, bootstrap
        )
        for metric, diff in zip(metrics, differences, strict=True):
            rows.append(
                PairedRow(
                    method=entry.name,
                    reference=reference,
                    metric=metric,
                    seeds=seeds,
                    difference=diff.estimate,
                    low=diff.low,
                    high=diff.high,
                    p_value=diff.p_value,
                    per_seed=diff.per_seed,
                    seed_std=diff.seeds.std,
                    seed_low=diff.seeds.low,
                    seed_high=diff.seeds.high,
                )
            )
    return tuple(rows)


# ------------------------------------------------------------------------------------------ files


def report_dir(root: Path) -> Path:
    return ComparisonWorkspace(root).report


def write_report(report: ComparisonReport, root: Path) -> list[Path]:
    """summary.json (everything), metrics.json (DVC metrics), summary.csv, paired.csv and comparison.md."""
    folder = report_dir(root)
    means = {m.method: {key: s.mean for key, s in m.metrics.items()} for m in report.methods}
    write_json_atomic(folder / "summary.json", report.model_dump(mode="json"))
    write_json_atomic(folder / "metrics.json", means)
    texts = {
        "summary.csv": _summary_csv(report),
        "paired.csv": _paired_csv(report),
        "comparison.md": comparison_markdown(report),
    }
    for name, text in texts.items():
        write_text_atomic(folder / name, text)
    return [folder / name for name in ("summary.json", "metrics.json", *texts)]


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _summary_csv(report: ComparisonReport) -> str:
    rows = [
        (m.method, key, s.mean, s.std, s.low, s.high, len(s.values))
        for m in report.methods
        for key, s in (*m.metrics.items(), *m.cost.items())
    ]
    return _csv(("method", "metric", "mean", "std", "low", "high", "seeds"), rows)


def _paired_csv(report: ComparisonReport) -> str:
    rows = [
        (p.method, p.reference, p.metric, p.difference, p.low, p.high, p.p_value, p.seed_std, len(p.seeds))
        for p in report.paired
    ]
    return _csv(("method", "reference", "metric", "difference", "low", "high", "p_value", "seed_std", "seeds"), rows)


def mean_std(summary: Summary | None, digits: int = 2) -> str:
    if summary is None:
        return "-"
    if summary.std is None:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {summary.std:.{digits}f}"


def paired_text(row: PairedRow | None) -> str:
    if row is None:
        return "-"
    return f"{row.difference:+.2f} [{row.low:+.2f}, {row.high:+.2f}] p={row.p_value:.3g}"


def paired_row(report: ComparisonReport, method: str, metric: str) -> PairedRow | None:
    return next((p for p in report.paired if p.method == method and p.metric == metric), None)


def comparison_markdown(report: ComparisonReport) -> str:
    """The README's tables: accuracy with paired differences and cost, then calibration and weight change."""
    head = (
        f"Test split of {report.dataset} ({report.test_images} images), {report.seeds_text}; mean ± std over seeds. "
        f"Δ: paired difference from {report.reference} on the same test images, seed-mean, with its 95% "
        f"bootstrap interval ({report.bootstrap.resamples} resamples of test images within each class) and "
        "two-sided p.\n\n"
    )
    columns = [*ACCURACY, "Δ balanced", "Δ few", "steps", "images seen", "train s", "search: folds / val passes"]
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for m in report.methods:
        cost = m.cost
        lines.append(
            f"| {m.method} | "
            + " | ".join(mean_std(m.metrics.get(key)) for key in ACCURACY)
            + f" | {paired_text(paired_row(report, m.method, 'balanced'))}"
            + f" | {paired_text(paired_row(report, m.method, 'few'))}"
            + f" | {_count(cost.get('steps'))} | {_count(cost.get('samples'))} | {mean_std(cost.get('seconds'), 0)}"
            + f" | {search_cost_text(m)} |"
        )
    lines += [
        "",
        "| method | T | NLL | ECE % | Brier | NLL head | NLL tail | ECE head | ECE tail | Brier head | Brier tail "
        "| ‖θ−θ0‖/‖θ0‖ % |",
        "|---|" + "---:|" * 11,
    ]
    for m in report.methods:
        relative = m.metrics.get("weight_change_relative")
        percent = None if relative is None else Summary.of([100 * v for v in relative.values])
        lines.append(
            f"| {m.method} | "
            + " | ".join(mean_std(m.metrics.get(key), 3) for key in ("temperature", "nll", "ece", "brier"))
            + "".join(
                f" | {mean_std(m.metrics.get(f'{metric}_{side}'), 3)}"
                for metric in ("nll", "ece", "brier")
                for side in ("head", "tail")
            )
            + f" | {mean_std(percent, 3)} |"
        )
    return head + "\n".join(lines) + "\n"


def search_cost_text(summary: MethodSummary) -> str:
    """The search's soups folded / validation passes, or '-' for a method that does not search."""
    folds, passes = (summary.cost.get(key) for key in SEARCH_COST)
    return "-" if folds is None or passes is None else f"{_count(folds)} / {_count(passes)}"


def _count(summary: Summary | None) -> str:
    return "-" if summary is None else f"{summary.mean:,.0f}"
