"""How a training fails for a reason the user can act on (distinct from programming errors)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""
