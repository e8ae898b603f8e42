"""Training: data order and augmentation, schedule, EMA and the optimisation loop."""
