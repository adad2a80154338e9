"""The pipeline's steps, defined once: each name with its notebook, its title and what it
reads of the run record. Everything else (the run record, the runner, the cache, the reports,
the API's step names) reads this table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One step of a run."""

    name: str
    notebook: str  # notebooks/<notebook>.ipynb; reports/<run_id>/<notebook>.html
    title: str  # the report's title
    # what the step reads from the run record, as (name, field): its cache key hashes them
    reads: tuple[tuple[str, str], ...] = ()


CATALOGUE: tuple[Step, ...] = (
    Step("extract", "01_extract", "Extract"),
    Step("train", "02_train", "Train", reads=(("snapshot", "snapshot"),)),
    Step(
        "evaluate",
        "03_evaluate",
        "Evaluate",
        reads=(("snapshot", "snapshot"), ("holdout", "holdout"), ("model", "model")),
    ),
)
STEPS: tuple[str, ...] = tuple(step.name for step in CATALOGUE)  # in the order they run
NOTEBOOKS: dict[str, str] = {step.name: step.notebook for step in CATALOGUE}
TITLES: dict[str, str] = {step.name: step.title for step in CATALOGUE}
READS: dict[str, tuple[tuple[str, str], ...]] = {step.name: step.reads for step in CATALOGUE}
