"""What the session's served run (tests/tracking/conftest.py) trains: test modules import these from here, since
`conftest` names a different module depending on which folders pytest collects."""

SERVED_MEMBERS = ["f1-r0", "f1-r1", "f2-r0", "f2-r1"]
SERVED_FACTORS = [1, 2]
SERVED_MODEL = "tiny-soup"
