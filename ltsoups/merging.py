"""The streaming merge engine: each output tensor is computed from the same tensor of every input, one
tensor at a time, and written as soon as it is computed.

Memory: a weighted sum (a `LinearMerger`, or any merger with ``as_weighted_sum``) goes through every
input a slice at a time (a few MiB of buffers in all); a per-tensor merge holds one tensor of every
input. Outputs are streamed to their files, never held whole, so memory does not grow with the number
of members for weighted sums, and by one tensor per member for per-tensor merges. Several outputs (the
running soup after each factor) are computed in the same pass: every input tensor is read once for all.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

import torch

from ltsoups.checkpoint import refuse_non_finite
from ltsoups.contracts import FactorGroup, FactorTensors, PerTensorMerger, Weights
from ltsoups.io.safetensors import DTYPES, CheckpointError, TensorFileReader, TensorLayout
from ltsoups.peft.adapters import fold_inputs, fold_lora, is_lora_state

CHUNK_ELEMENTS = 1 << 18
"""A weighted sum proceeds a slice of this many elements at a time through every input, so the slices and
their float64 sums stay in the CPU cache (1 MiB of float32 per input)."""


class TensorSink(Protocol):
    """Where a merge writes its output, tensor after tensor in sorted-name order (a `CheckpointWriter`)."""

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """A whole tensor."""

    def write_part(self, name: str, part: torch.Tensor) -> None:
        """The next elements of a tensor, flattened, in order."""


class TensorCollector:
    """A merge output kept in memory (to score a candidate soup without writing it)."""

    def __init__(self, layout: TensorLayout) -> None:
        self.layout = layout
        self.tensors: dict[str, torch.Tensor] = {}
        self._filled: dict[str, int] = {}

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self.tensors[name] = tensor.clone()  # the engine reuses the buffer it hands over

    def write_part(self, name: str, part: torch.Tensor) -> None:
        if name not in self.tensors:
            shape, code = self.layout.entries[name]
            self.tensors[name], self._filled[name] = torch.empty(shape, dtype=DTYPES[code]), 0
        start = self._filled[name]
        self.tensors[name].view(-1)[start : start + part.numel()].copy_(part)
        self._filled[name] = start + part.numel()


class TensorSource:
    """One input checkpoint read a tensor at a time, with LoRA updates folded into their weights if asked.

    Folding (the authors' ``merge_lora_weights_with_sd``): a LoRA member's weight is read as
    W + (A B)^T / r, computed from its ``original`` and factors when it is read, so soups average the
    weights the members computed with, and the merged layout is the plain encoder's.
    """

    def __init__(self, path: Path, fold: bool) -> None:
        self.path = path
        self.reader = TensorFileReader(path)
        names = self.reader.names()
        self._inputs = fold_inputs(names) if fold and is_lora_state(names) else {name: (name,) for name in names}
        try:
            self._main = {target: self._main_input(target, sources) for target, sources in self._inputs.items()}
        except CheckpointError:
            self.reader.close()
            raise
        self.layout = TensorLayout({target: self.reader.layout(self._main[target]) for target in sorted(self._inputs)})
        self._folded: tuple[str, torch.Tensor] | None = None

    def _main_input(self, target: str, sources: tuple[str, ...]) -> str:
        """The stored tensor that gives ``target`` its shape and dtype: itself, or the weight LoRA adapts."""
        if sources == (target,):
            return target
        original = [name for name in sources if name.endswith(".original")]
        if not original:
            raise CheckpointError(f"{self.path}: {target}: LoRA factors without the weight they adapt (its 'original')")
        return original[0]

    def read(self, name: str, scratch: torch.Tensor | None = None) -> torch.Tensor:
        """Tensor ``name`` (folded if it is a LoRA weight); with a uint8 ``scratch``, possibly a view into it."""
        return self._finite(name, self._read(name, scratch))

    def _finite(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        refuse_non_finite(self.path, name, tensor, "it cannot be merged (did its training diverge?)")
        return tensor

    def _read(self, name: str, scratch: torch.Tensor | None) -> torch.Tensor:
        sources = self._inputs[name]
        if sources == (name,):
            return self.reader.read(name, scratch)
        main = self._main[name]
        parts = {source: self.reader.read(source, scratch if source == main else None) for source in sources}
        try:
            return fold_lora(parts)[name]
        except ValueError as err:
            raise CheckpointError(f"{self.path}: {err}") from err

    def read_range(self, name: str, start: int, count: int, scratch: torch.Tensor) -> torch.Tensor:
        """Elements ``start`` to ``start + count`` of tensor ``name``, flattened.

        A folded weight is computed whole once (then sliced): the update of a slice needs all of A and B.
        """
        if self._inputs[name] == (name,):
            return self._finite(name, self.reader.read_range(name, start, count, scratch))
        if self._folded is None or self._folded[0] != name:
            self._folded = (name, self.read(name).reshape(-1))
        return self._folded[1][start : start + count]

    def close(self) -> None:
        self.reader.close()


class MergeInputs:
    """The open inputs of a merge, their common layout checked before anything is written."""

    def __init__(self, sources: Mapping[Path, TensorSource]) -> None:
        self.sources = sources
        first, *others = sources.values()
        for source in others:
            mismatch = first.layout.first_mismatch(source.layout)
            if mismatch is not None:
                raise CheckpointError(f"cannot merge {source.path} with {first.path}: {mismatch}")
        self.layout = first.layout
        entries = self.layout.entries
        self._most_bytes = max((math.prod(s) * DTYPES[d].itemsize for s, d in entries.values()), default=0)

    @classmethod
    @contextmanager
    def open(cls, paths: Sequence[Path], fold_lora: bool = False) -> Iterator[MergeInputs]:
        """The checkpoints at ``paths`` (each opened once), LoRA folded if ``fold_lora``."""
        if not paths:
            raise ValueError("nothing to merge")
        with ExitStack() as stack:
            sources: dict[Path, TensorSource] = {}
            for path in paths:
                if path not in sources:
                    sources[path] = TensorSource(path, fold_lora)
                    stack.callback(sources[path].close)
            yield cls(sources)

    def _bytes(self) -> torch.Tensor:
        return torch.empty(self._most_bytes, dtype=torch.uint8)

    def _output(self, buffer: torch.Tensor, name: str, value: torch.Tensor) -> torch.Tensor:
        """``value`` in the layout's dtype, in ``buffer`` (reused for every tensor: nothing stays allocated)."""
        shape, code = self.layout.entries[name]
        if tuple(value.shape) != shape:
            raise ValueError(f"tensor {name!r}: the merge gave shape {list(value.shape)}, expected {list(shape)}")
        dtype = DTYPES[code]
        return buffer[: math.prod(shape) * dtype.itemsize].view(dtype).view(shape).copy_(value)

    def weighted_sums(self, sums: Sequence[Weights], sinks: Sequence[TensorSink]) -> None:
        """Write each weighted sum of checkpoints to its sink.

        Floating tensors are summed in float64 in the order of each sum's weights (so a sum is the same
        bits whichever others are computed beside it) and stored in their own dtype; other tensors
        (integer buffers) are taken from the sum's first input. When the sums add their inputs in one
        common order (prefixes of one another: the running soups), every input tensor is read once.
        """
        if not all(sums):
            raise ValueError("nothing to merge: a weighted sum without inputs")
        for weights in sums:
            paths = [path for path, _ in weights]
            if len(set(paths)) < len(paths):
                twice = next(path for path in paths if paths.count(path) > 1)
                raise ValueError(f"a weighted sum names {twice} more than once: give each checkpoint one weight")
        order = _common_order(sums)
        if order is None:
            for weights, sink in zip(sums, sinks, strict=True):
                self.weighted_sums([weights], [sink])
            return
        uses: dict[Path, list[tuple[int, float]]] = defaultdict(list)
        for index, weights in enumerate(sums):
            for path, weight in weights:
                uses[path].append((index, weight))
        chunk = CHUNK_ELEMENTS
        scratch, out = torch.empty(8 * chunk, dtype=torch.uint8), torch.empty(8 * chunk, dtype=torch.uint8)
        widened = torch.empty(chunk, dtype=torch.float64)
        totals = [torch.empty(chunk, dtype=torch.float64) for _ in sums]
        for name in sorted(self.layout.entries):
            shape, code = self.layout.entries[name]
            dtype, size = DTYPES[code], math.prod(shape)
            for start in range(0, max(size, 1), chunk):
                count = min(chunk, size - start)
                if not dtype.is_floating_point:
                    for weights, sink in zip(sums, sinks, strict=True):
                        sink.write_part(name, self.sources[weights[0][0]].read_range(name, start, count, scratch))
                    continue
                parts = [total[:count].zero_() for total in totals]
                for path in order:
                    member = widened[:count].copy_(self.sources[path].read_range(name, start, count, scratch))
                    for index, weight in uses[path]:
                        parts[index].add_(member, alpha=weight)
                for part, sink in zip(parts, sinks, strict=True):
                    sink.write_part(name, out[: count * dtype.itemsize].view(dtype).copy_(part))

    def per_tensor(
        self, merger: PerTensorMerger, theta0: Path, groups: Sequence[FactorGroup], sinks: Sequence[TensorSink]
    ) -> None:
        """Write ``merger``'s merge tensor by tensor: to one sink, or to one per prefix of ``groups``.

        Every input's tensor is read into its own buffer and handed to the merger; integer buffers are
        taken from θ_0.
        """
        if len(sinks) not in (1, len(groups)):
            raise ValueError(f"{len(sinks)} outputs for {len(groups)} factor groups: give 1, or one per prefix")
        prefixes = len(sinks) > 1
        base_scratch, out = self._bytes(), self._bytes()
        scratches = [[self._bytes() for _ in group.members] for group in groups]
        for name in sorted(self.layout.entries):
            base = self.sources[theta0].read(name, base_scratch)
            if not base.is_floating_point():
                for sink in sinks:
                    sink.write(name, base)
                continue
            tensors = [
                FactorTensors(
                    group.factor,
                    tuple(self.sources[m].read(name, s) for m, s in zip(group.members, buffers, strict=True)),
                )
                for group, buffers in zip(groups, scratches, strict=True)
            ]
            results = (
                merger.merge_prefixes(name, base, tensors) if prefixes else [merger.merge_tensor(name, base, tensors)]
            )
            for result, sink in zip(results, sinks, strict=True):
                sink.write(name, self._output(out, name, result))

    def per_factor(
        self,
        step: Callable[[str, torch.Tensor, FactorTensors], torch.Tensor],
        theta0: Path,
        groups: Sequence[FactorGroup],
        sinks: Sequence[TensorSink],
    ) -> None:
        """Write ``step(name, base, one factor's tensors)`` of every factor to its sink, floating tensors only,
        in float64 (the search's factor merges).

        One factor's inputs are held at a time (memory: the replicas of a factor, not every member).
        """
        base_scratch = self._bytes()
        scratches = [self._bytes() for _ in range(max((len(group.members) for group in groups), default=0))]
        for name in sorted(self.layout.entries):
            base = self.sources[theta0].read(name, base_scratch)
            if not base.is_floating_point():
                continue
            for group, sink in zip(groups, sinks, strict=True):
                members = tuple(self.sources[m].read(name, s) for m, s in zip(group.members, scratches, strict=False))
                sink.write(name, step(name, base, FactorTensors(group.factor, members)).to(torch.float64))


def _common_order(sums: Sequence[Weights]) -> list[Path] | None:
    """One order of inputs in which every sum adds its inputs in its own order, if there is one.

    The longest sum's order, when every sum follows it (no sum names an input twice).
    """
    if not sums:
        return []
    longest = [path for path, _ in max(sums, key=len)]
    position = {path: index for index, path in enumerate(longest)}
    for weights in sums:
        paths = [path for path, _ in weights]
        if any(path not in position for path in paths):
            return None
        places = [position[path] for path in paths]
        if places != sorted(places):
            return None
    return longest
