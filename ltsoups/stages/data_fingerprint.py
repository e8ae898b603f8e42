"""Stage `data`: the configured dataset's fingerprint, a dependency of every stage that reads the data.

DVC runs this stage every time (`always_changed`); its output changes only when the dataset's params
or the content of one of its files do, so an unchanged dataset reruns nothing after it.
"""

from __future__ import annotations

from ltsoups.config import LtSoupsConfig
from ltsoups.data.fingerprint import FilesFingerprint, fingerprint_files
from ltsoups.io.atomic import write_json_atomic
from ltsoups.registry import PluginRegistry
from ltsoups.workspace import Workspace


def fingerprint_data(config: LtSoupsConfig, workspace: Workspace, registry: PluginRegistry) -> FilesFingerprint:
    """Write the dataset's fingerprint (its plugin, params and files' digest); what changed since the last one."""
    spec = config.data.dataset
    files = fingerprint_files(registry.instantiate(spec).files(), workspace.fingerprint_cache)
    record = {
        "dataset": spec.model_dump(mode="json", by_alias=True),
        "files": files.files,
        "bytes": files.bytes,
        "sha256": files.sha256,
    }
    write_json_atomic(workspace.data_fingerprint, record)
    return files
