"""The pipeline: the runner executes the step notebooks; each notebook opens its step."""
