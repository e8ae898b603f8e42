"""dvc.yaml's params of each stage are the table ltsoups.stages.sections.STAGE_PARAMS, stage by stage."""

from pathlib import Path

import yaml

from ltsoups.stages.sections import STAGE_PARAMS

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_reads_the_params_the_table_names() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = {name: tuple(stage.get("do", stage).get("params", ())) for name, stage in stages.items()}
    assert params == STAGE_PARAMS
