import pytest

from ltsoups.contracts import Sampler
from ltsoups.registry import PluginEntry, PluginError, PluginKind, PluginRegistry

BUILT_INS = {
    PluginKind.SAMPLER: {"progressive", "full-data", "fixed-ratio", "zero-shot"},
    PluginKind.LOSS: {"logit-adjusted", "cross-entropy", "class-balanced"},
    PluginKind.MERGER: {"uniform", "recursive", "task-arithmetic", "ties", "dare", "greedy"},
    PluginKind.BACKBONE: {"open-clip", "timm"},
    PluginKind.DATASET: {
        "embedded",
        "cifar100-lt",
        "cifar100-two-axis",
        "tiny-imagenet-lt",
        "list-file",
        "image-folder",
        "csv",
    },
    PluginKind.RUNNER: {"local", "ray"},
}


@pytest.mark.parametrize("kind", list(PluginKind))
def test_every_built_in_is_discovered_through_entry_points(kind: PluginKind) -> None:
    registry = PluginRegistry.installed()
    ours = {e.name for e in registry.entries(kind) if e.distribution.startswith("ltsoups ")}
    assert ours == BUILT_INS[kind]  # a lost or renamed built-in fails here


def test_unknown_name_lists_what_is_installed() -> None:
    with pytest.raises(PluginError, match=r"unknown merger 'tie'; installed: .*recursive.*ties.*uniform"):
        PluginRegistry.installed().entry(PluginKind.MERGER, "tie")


def test_duplicate_names_from_two_distributions_are_an_error() -> None:
    entries = [
        PluginEntry(PluginKind.SAMPLER, "progressive", "ltsoups.plugins.samplers:ProgressiveSubsampler", "ltsoups"),
        PluginEntry(PluginKind.SAMPLER, "progressive", "other.module:Sampler", "other 1.0"),
    ]
    with pytest.raises(PluginError, match=r"registered twice: by ltsoups .* and by other 1\.0"):
        PluginRegistry(entries)


class NotASampler:
    pass


class EverySampleSampler(Sampler):
    description = "test sampler"

    def draws(self, class_counts, seed):
        return []


def test_hermetic_registry_with_fake_plugins() -> None:
    registry = PluginRegistry(
        [
            PluginEntry(PluginKind.SAMPLER, "fake", f"{__name__}:EverySampleSampler", "tests"),
            PluginEntry(PluginKind.SAMPLER, "broken", f"{__name__}:NotASampler", "tests"),
            PluginEntry(PluginKind.SAMPLER, "missing", "no_such_module:Thing", "tests"),
        ]
    )
    assert isinstance(registry.create(PluginKind.SAMPLER, "fake"), EverySampleSampler)
    with pytest.raises(PluginError, match="is not a Sampler"):
        registry.create(PluginKind.SAMPLER, "broken")
    with pytest.raises(PluginError, match=r"cannot be loaded .*ModuleNotFoundError"):
        registry.create(PluginKind.SAMPLER, "missing")
    with pytest.raises(PluginError, match=r"(?s)sampler 'fake': .*Extra inputs are not permitted"):
        registry.create(PluginKind.SAMPLER, "fake", {"unknown": 1})
