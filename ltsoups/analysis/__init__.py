"""The paper's analyses of trained models (calibration, weight change) and the statistics of a comparison."""
