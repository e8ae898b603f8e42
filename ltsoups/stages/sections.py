"""Which config sections each stage's output depends on: the input of its recorded config hash."""

THETA0_SECTIONS = ("data", "backbone", "head")
MEMBER_SECTIONS = (*THETA0_SECTIONS, "train")
MERGE_SECTIONS = (*MEMBER_SECTIONS, "plan", "merge")
HEAD_SECTIONS = (*MERGE_SECTIONS, "retrain_head")
