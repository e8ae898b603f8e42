"""Which config sections each stage's output depends on: the input of its recorded config hash."""

THETA0_SECTIONS = ("data", "backbone", "head")
MEMBER_SECTIONS = (*THETA0_SECTIONS, "train")
MERGE_SECTIONS = (*MEMBER_SECTIONS, "plan", "merge")
HEAD_SECTIONS = (*MERGE_SECTIONS, "retrain_head")

STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "data": ("data.dataset",),
    "prepare": ("seed", "data", "plan", "members"),
    "theta0": THETA0_SECTIONS,
    "train-member": ("seed", *MEMBER_SECTIONS),
    "merge": (*MERGE_SECTIONS, "evaluation"),
    "retrain-head": ("seed", *HEAD_SECTIONS, "evaluation"),
    "evaluate": (*THETA0_SECTIONS, "evaluation"),
}
"""What each stage of dvc.yaml reads of params.yaml (its `params`, checked against this table): the sections
its config hash covers, the run seed where it draws from it, and how the scores it records are predicted."""
