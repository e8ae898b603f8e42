"""The streaming merge engine: each output tensor is computed from the same tensor of every input, one
tensor at a time, and written as soon as it is computed.

Memory: a weighted sum (a `LinearMerger`, or any merger with ``as_weighted_sum``) goes through every
input a slice at a time (a few MiB of buffers in all), and so does an `EntrywiseMerger` (TIES, DARE:
about one tensor in all); another per-tensor merge holds one tensor of every input. Outputs are streamed
to their files, never held whole. Several outputs (the running soup after each factor) are computed in
the same pass: every input tensor is read once for all.

Inputs whose sha256 is given are hashed as they are read, and every pass ends by checking them: a
changed input is an error naming it before any output of the pass is committed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import Protocol

import torch

from ltsoups.checkpoint import refuse_altered, refuse_non_finite, refuse_unlike_sidecar
from ltsoups.contracts import ENTRY_SLICE, EntrywiseMerger, FactorGroup, FactorTensors, PerTensorMerger, Weights
from ltsoups.io.safetensors import DTYPES, CheckpointError, TensorFileReader, TensorLayout
from ltsoups.peft.adapters import fold_inputs, fold_lora, is_lora_state

CHUNK_ELEMENTS = 1 << 15
"""A weighted sum proceeds a slice of this many elements at a time through every input, so the slice and
the float64 sums stay in the CPU's cache (256 KiB each). The best size depends on the CPU: on 2026-12-01's
machine slices of 1 MiB were 3x slower; on 2026-12-07's, 1.25x faster (the per-slice Python cost weighs more)."""


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

    def __init__(self, path: Path, fold: bool, sha256: str | None = None) -> None:
        """``sha256``: what its sidecar records; the file is hashed as it is read, checked by `verify`."""
        self.path, self.sha256 = path, sha256
        self.reader = TensorFileReader(path, hashing=sha256 is not None)
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

    def read_range(
        self, name: str, start: int, count: int, scratch: torch.Tensor, checked: bool = True
    ) -> torch.Tensor:
        """Elements ``start`` to ``start + count`` of tensor ``name``, flattened; refused if not finite, unless
        ``checked`` is False (a caller that checks what it computes from the slice instead).

        A folded weight is computed whole once (then sliced): the update of a slice needs all of A and B.
        """
        if self._inputs[name] == (name,):
            part = self.reader.read_range(name, start, count, scratch)
            return self._finite(name, part) if checked else part
        if self._folded is None or self._folded[0] != name:
            self._folded = (name, self.read(name).reshape(-1))
        return self._folded[1][start : start + count]

    def verify(self) -> None:
        """A CheckpointError naming the file if its bytes are not the ones its sidecar records (given a sha256)."""
        if self.sha256 is not None:
            refuse_altered(self.path, self.sha256, self.reader.sha256())

    def close(self) -> None:
        self.reader.close()


def _open_source(path: Path, fold: bool, sha256: str | None) -> TensorSource:
    """``path`` opened; given the sha256 its sidecar records, a file that does not parse is refused as
    `open_checkpoint` refuses it."""
    try:
        return TensorSource(path, fold, sha256)
    except CheckpointError:
        if sha256 is not None:
            refuse_unlike_sidecar(path, sha256)
        raise


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
    def open(
        cls, paths: Sequence[Path], fold_lora: bool = False, sha256: Mapping[Path, str] | None = None
    ) -> Iterator[MergeInputs]:
        """The checkpoints at ``paths`` (each opened once), LoRA folded if ``fold_lora``.

        ``sha256``: what the sidecars of (some of) the inputs record. Those are hashed as they are read;
        each pass over the inputs checks them when it ends, and so does any CheckpointError in the block
        (a changed input is the error to report, not what it caused).
        """
        if not paths:
            raise ValueError("nothing to merge")
        recorded = sha256 or {}
        with ExitStack() as stack:
            sources: dict[Path, TensorSource] = {}
            for path in paths:
                if path not in sources:
                    sources[path] = _open_source(path, fold_lora, recorded.get(path))
                    stack.callback(sources[path].close)
            try:
                yield cls(sources)
            except CheckpointError:
                _verify(sources)
                raise

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
                    source = self.sources[path]
                    member = widened[:count].copy_(source.read_range(name, start, count, scratch, checked=False))
                    for index, weight in uses[path]:
                        parts[index].add_(member, alpha=weight)
                # A NaN or an infinity in an input makes every sum that reads it non-finite (even at weight 0):
                # one check per sum instead of one per input, and the inputs are looked at only then.
                if not all(math.isfinite(float(part.sum())) for part in parts):
                    self._refuse_non_finite(name, start, count, order, scratch)
                for part, sink in zip(parts, sinks, strict=True):
                    sink.write_part(name, out[: count * dtype.itemsize].view(dtype).copy_(part))
        _verify(self.sources)

    def _refuse_non_finite(
        self, name: str, start: int, count: int, order: Sequence[Path], scratch: torch.Tensor
    ) -> None:
        """The error for a weighted sum of a slice that is not finite: the first input whose slice is not, by name."""
        for path in order:
            self.sources[path].read_range(name, start, count, scratch)  # checked: raises, naming the file
        raise CheckpointError(f"tensor {name!r}: a weighted sum of finite inputs overflowed; check the merge's weights")

    def per_tensor(
        self, merger: PerTensorMerger, theta0: Path, groups: Sequence[FactorGroup], sinks: Sequence[TensorSink]
    ) -> None:
        """Write ``merger``'s merge tensor by tensor: to one sink, or to one per prefix of ``groups``.

        Every input's tensor is read into its own buffer and handed to the merger, or, for an
        `EntrywiseMerger`, a slice of every member at a time; integer buffers are taken from θ_0.
        """
        if len(sinks) not in (1, len(groups)):
            raise ValueError(f"{len(sinks)} outputs for {len(groups)} factor groups: give 1, or one per prefix")
        if isinstance(merger, EntrywiseMerger):
            self._entrywise(merger, theta0, groups, sinks)
        else:
            self._whole_tensors(merger, theta0, groups, sinks)
        _verify(self.sources)

    def _whole_tensors(
        self, merger: PerTensorMerger, theta0: Path, groups: Sequence[FactorGroup], sinks: Sequence[TensorSink]
    ) -> None:
        prefixes = len(sinks) > 1
        base_scratch, out = self._bytes(), self._bytes()
        scratches = [[self._bytes() for _ in group.members] for group in groups]
        for name in sorted(self.layout.entries):
            base = self.sources[theta0].read(name, base_scratch)
            if _copied_as_is(name, base, sinks):
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

    def _entrywise(
        self, merger: EntrywiseMerger, theta0: Path, groups: Sequence[FactorGroup], sinks: Sequence[TensorSink]
    ) -> None:
        """Each tensor a slice at a time: the members' contributions to a slice are computed once, and
        combined for every output (the merges of ``groups[:k]``: its first ``ends[k]`` members)."""
        members = [(group.factor, p, self.sources[path]) for group in groups for p, path in enumerate(group.members)]
        ends = list(accumulate(len(group.members) for group in groups))[-len(sinks) :]
        base_scratch, member_scratch = self._bytes(), self._bytes()
        out = torch.empty(ENTRY_SLICE * 8, dtype=torch.uint8)
        for name in sorted(self.layout.entries):
            base = self.sources[theta0].read(name, base_scratch)
            if _copied_as_is(name, base, sinks):
                continue
            wide, dtype = base.to(torch.float64).reshape(-1), base.dtype
            states = [
                merger.member_state(name, wide.view(base.shape), factor, p, partial(source.read, name, member_scratch))
                for factor, p, source in members
            ]
            for start in range(0, max(wide.numel(), 1), ENTRY_SLICE):  # an empty tensor is written too
                count = min(ENTRY_SLICE, wide.numel() - start)
                part = wide[start : start + count]
                contributions = [
                    merger.member_slice(state, part, source.read_range(name, start, count, member_scratch))
                    for state, (_, _, source) in zip(states, members, strict=True)
                ]
                for end, sink in zip(ends, sinks, strict=True):
                    merged = merger.combine(part, contributions[:end])
                    if merged.shape != part.shape:
                        raise ValueError(
                            f"tensor {name!r}: {type(merger).__name__}.combine gave shape {list(merged.shape)} "
                            f"for a slice of {count} entries"
                        )
                    sink.write_part(name, out[: count * dtype.itemsize].view(dtype).copy_(merged))

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
        _verify(self.sources)


def _verify(sources: Mapping[Path, TensorSource]) -> None:
    for source in sources.values():
        source.verify()


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


def _copied_as_is(name: str, base: torch.Tensor, sinks: Sequence[TensorSink]) -> bool:
    """An integer buffer (a step count, an index) is not merged: theta_0's goes to every output."""
    if base.is_floating_point():
        return False
    for sink in sinks:
        sink.write(name, base)
    return True
