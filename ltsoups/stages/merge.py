"""Stage `merge`: members -> soup, streaming, plus the running soup after each factor; or a search of
the lambdas and N on the validation split (``merge.search``)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltsoups.checkpoint import Checkpoint, CheckpointWriter, save_checkpoint
from ltsoups.contracts import (
    FactorGroup,
    Merger,
    PerTensorMerger,
    SearchableMerger,
    SelectingMerger,
    ValidationMetric,
    Weights,
)
from ltsoups.evaluation import Scores, predict, score_predictions
from ltsoups.io.atomic import write_json_atomic
from ltsoups.merge_search import SoupSearch, accuracy, running_soups, search_soups
from ltsoups.merging import MergeInputs, TensorCollector
from ltsoups.registry import PluginError
from ltsoups.stages.context import RunContext
from ltsoups.stages.inputs import Link, verified_chain
from ltsoups.stages.sections import merge_config_sha256
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class RunningSoup:
    factor: int
    checkpoint: Checkpoint
    val: Scores


@dataclass(frozen=True)
class MergeOutput:
    """The running soups written (the last one is the soup, `workspace.soup`), and the search if there was one."""

    running: list[RunningSoup]
    search: SoupSearch | None = None


class ValidationScorer:
    """Scores soups on the run's validation split, in the run's classifier; never sees the test split.

    Soups of weights are merged in memory from the merge's open inputs, with the same engine as the soups
    written, so a written soup scores what it scored here. Scores are cached: a greedy soup asks for the
    same ones repeatedly.
    """

    def __init__(self, context: RunContext, inputs: MergeInputs) -> None:
        self.context, self.inputs = context, inputs
        self._cache: dict[tuple[tuple[Path, float], ...], Scores] = {}

    def score(self, weights: Sequence[tuple[Path, float]], metric: ValidationMetric) -> float:
        return accuracy(self.scores(weights), metric)

    def scores(self, weights: Sequence[tuple[Path, float]]) -> Scores:
        key = tuple(weights)
        if key not in self._cache:
            collector = TensorCollector(self.inputs.layout)
            self.inputs.weighted_sums([list(weights)], [collector])
            self._cache[key] = self.score_state(collector.tensors, "a soup merged in memory")
        return self._cache[key]

    def score_state(self, state: Mapping[str, torch.Tensor], source: str = "a soup held in memory") -> Scores:
        return self._evaluate(self.context.classifier_with(state, source))

    def score_checkpoint(self, checkpoint: Checkpoint) -> Scores:
        return self._scores(self.context.checkpoint_logits(checkpoint, "val"))

    def _evaluate(self, model: torch.nn.Module) -> Scores:
        return self._scores(predict(model, self.context.evaluation_inputs("val")))

    def _scores(self, logits: np.ndarray) -> Scores:
        context = self.context
        labels, thresholds = context.splits.val.labels, context.config.data.thresholds
        return score_predictions(logits.argmax(axis=-1), labels, context.train_counts, thresholds)


def merge_members(context: RunContext, workspace: Workspace) -> MergeOutput:
    """The soup and one running soup per factor prefix, each scored on the validation split.

    With ``merge.search.enabled``, lambda and N are chosen on validation first (see ``ltsoups.merge_search``).
    """
    config = context.config
    searching = config.merge.search.enabled
    # A merge hashes theta_0 and the members as it reads them (each read once), and checks them before any
    # soup is committed; a search reads them in passes of its own, so it has them hashed first.
    chain = verified_chain(
        config, workspace, reads=[Link.MEMBERS], loads=[Link.THETA0, Link.MEMBERS], hash_on_read=not searching
    )
    assert chain.theta0 is not None
    theta0, groups = chain.theta0, chain.members
    spec = config.merge.merger
    merger = context.plugin(spec)
    paths = [theta0.path, *(m for g in groups for m in g.members)]
    recorded = None if searching else chain.recorded_sha256()
    # Every input must fit before anything is chosen or written: a failed merge writes nothing.
    with MergeInputs.open(paths, config.merge.fold_lora, recorded) as inputs:
        scorer = ValidationScorer(context, inputs)
        provenance = {
            "config_sha256": merge_config_sha256(config),
            "theta0_sha256": theta0.sidecar.weights_sha256,
            "merger": spec.model_dump(mode="json", by_alias=True),
            "fold_lora": config.merge.fold_lora,
            **context.classifier_spec(inputs.layout.entries).sidecar_entry(),
        }
        if searching:  # then a SearchableMerger: the config's validation refuses any other
            output = _search(context, workspace, merger, theta0.path, groups, scorer, provenance, chain.soup_record)
        else:
            targets = _targets(workspace, groups)
            checkpoints = _merge(merger, inputs, theta0.path, groups, targets, scorer, provenance, chain.soup_record)
            for stale in (workspace.soup_search, workspace.soup_search_plot):  # an earlier search's, once replaced
                stale.unlink(missing_ok=True)
            factors = [group.factor for group in groups] or [0]
            output = MergeOutput(
                [RunningSoup(f, c, scorer.score_checkpoint(c)) for f, c in zip(factors, checkpoints, strict=True)]
            )
    metrics: dict[str, Any] = {f"f{soup.factor}": soup.val.headline() for soup in output.running}
    if output.search is not None:
        metrics["search"] = output.search.metrics()
    write_json_atomic(workspace.soup_metrics, metrics)
    return output


def _targets(workspace: Workspace, groups: Sequence[FactorGroup]) -> list[Path]:
    """Where the merge of each factor prefix goes: running soups, and the soup for all of them."""
    return [workspace.running_soup(group.factor) for group in groups[:-1]] + [workspace.soup]


def _merge(
    merger: Merger,
    inputs: MergeInputs,
    theta0: Path,
    groups: Sequence[FactorGroup],
    targets: Sequence[Path],
    scorer: ValidationScorer,
    provenance: dict[str, Any],
    soup_record: Callable[[int | None], dict[str, Any]],
) -> list[Checkpoint]:
    """Write the merge of each prefix of ``groups`` to its target, in one pass over the inputs when it can.

    ``soup_record(factor)``: what the soup of the factors up to ``factor`` records of its members.
    """
    if not groups:  # a plan without members (zero-shot sampler): the soup is theta_0
        return _write_sums(inputs, [[(theta0, 1.0)]], targets, [soup_record(None)], provenance)
    prefixes = [groups[:k] for k in range(1, len(groups) + 1)]
    extra = [soup_record(prefix[-1].factor) for prefix in prefixes]
    if isinstance(merger, SelectingMerger):
        selections = [merger.select(theta0, prefix, scorer) for prefix in prefixes]
        for record, selection in zip(extra, selections, strict=True):
            record["selection"] = selection.record
        return _write_sums(inputs, [s.weights for s in selections], targets, extra, provenance)
    if not isinstance(merger, PerTensorMerger):
        raise PluginError(f"{type(merger).__name__} derives from Merger but from none of its three kinds")
    sums = [merger.as_weighted_sum(theta0, prefix) for prefix in prefixes]
    if all(weights is not None for weights in sums):
        return _write_sums(inputs, [w for w in sums if w is not None], targets, extra, provenance)
    with ExitStack() as stack:
        writers = []
        for target, prefix, record in zip(targets, prefixes, extra, strict=True):
            inputs_record = [{"path": str(theta0), "role": "theta0"}] + [
                {"path": str(member), "factor": group.factor} for group in prefix for member in group.members
            ]
            writer = CheckpointWriter(target, inputs.layout, "soup", inputs=inputs_record, **record, **provenance)
            writers.append(stack.enter_context(writer))
        inputs.per_tensor(merger, theta0, groups, writers)
    return [writer.checkpoint for writer in writers]


def _write_sums(
    inputs: MergeInputs,
    sums: Sequence[Weights],
    targets: Sequence[Path],
    extra: Sequence[dict[str, Any]],
    provenance: dict[str, Any],
) -> list[Checkpoint]:
    with ExitStack() as stack:
        writers = []
        for weights, target, record in zip(sums, targets, extra, strict=True):
            inputs_record = [{"path": str(path), "weight": weight} for path, weight in weights]
            writer = CheckpointWriter(target, inputs.layout, "soup", inputs=inputs_record, **record, **provenance)
            writers.append(stack.enter_context(writer))
        inputs.weighted_sums(sums, writers)
    return [writer.checkpoint for writer in writers]


def _search(
    context: RunContext,
    workspace: Workspace,
    merger: SearchableMerger,
    theta0: Path,
    groups: Sequence[FactorGroup],
    scorer: ValidationScorer,
    provenance: dict[str, Any],
    soup_record: Callable[[int | None], dict[str, Any]],
) -> MergeOutput:
    """Choose the lambdas and N on validation, then write the running soups of those lambdas and the chosen soup."""
    config = context.config
    settings = config.merge.search
    if not groups:
        raise ValueError("merge.search.enabled: true, but the plan has no members to merge (zero-shot sampler)")
    workspace.soup.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".search-", dir=workspace.soup.parent) as folder:
        search, factors = search_soups(
            merger, theta0, groups, settings, scorer.score_state, Path(folder), config.merge.fold_lora
        )
        # Every soup scored is recorded before any soup is written: what was chosen, and from what.
        write_json_atomic(workspace.soup_search, search.as_json())
        chosen = search.chosen
        record = {"search": search.record()}
        written: list[RunningSoup] = []
        with MergeInputs.open([theta0], config.merge.fold_lora) as inputs:
            mergers = [merger.with_lambda(lam) for lam in search.lambdas]
            soups = running_soups(mergers, inputs.sources[theta0], factors)
            for point, soup in zip(search.running(), soups, strict=True):
                merged = [{"path": str(m), "factor": g.factor} for g in groups[: point.n + 1] for m in g.members]
                extra = {
                    "inputs": [{"path": str(theta0), "role": "theta0"}, *merged],
                    **soup_record(point.upto_factor),
                    **record,
                    **provenance,
                }
                targets = [workspace.running_soup(point.upto_factor)] if point.n < len(groups) - 1 else []
                targets += [workspace.soup] if point.n == chosen.n else []
                for target in targets:
                    written.append(
                        RunningSoup(point.upto_factor, save_checkpoint(target, soup, "soup", **extra), point.val)
                    )
    from ltsoups.search_plot import plot_search

    plot_search(search, workspace.soup_search_plot)
    return MergeOutput(written, search)
