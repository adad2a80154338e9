"""The pipeline's steps, defined once: each name with its notebook, its title, what it reads of
the run record and which parameters it reads. Everything else (the run record, the runner, the
cache, the reports, the API's step names, the notebooks' ``parameters`` cells) reads this table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from leaklib.paths import project_root


@dataclass(frozen=True)
class Step:
    """One step of a run."""

    name: str
    notebook: str  # notebooks/<notebook>.ipynb; reports/<run_id>/<notebook>.html
    title: str  # the report's title
    # what the step reads from the run record, as (name, field): its cache key hashes them
    reads: tuple[tuple[str, str], ...] = ()
    # the parameters the step reads, in leak params' order: its notebook's parameters cell
    # declares them, the runner injects their values and the cache key hashes them
    params: tuple[str, ...] = ()


# every step reads its run, the dataset and the two stores (pipeline.step.open_step opens them);
# the rest is what its notebook and the functions it calls read (checked in tests/test_steps.py)
_OPENING = "run_id dataset snapshot_store metadata_store"

CATALOGUE: tuple[Step, ...] = (
    # cv_folds: the schema checks that each class is in enough groups for the folds
    Step("extract", "01_extract", "Extract", params=tuple(f"{_OPENING} bigquery cv_folds".split())),
    Step(
        "train",
        "02_train",
        "Train",
        reads=(("snapshot", "snapshot"),),
        params=tuple(
            f"{_OPENING} model test_size split cv_folds seed threshold alarm mlflow_experiment "
            "promotion events".split()
        ),
    ),
    Step(
        "evaluate",
        "03_evaluate",
        "Evaluate",
        reads=(("snapshot", "snapshot"), ("holdout", "holdout"), ("model", "model")),
        params=tuple(f"{_OPENING} seed permutation_repeats promotion events localisation".split()),
    ),
)
STEPS: tuple[str, ...] = tuple(step.name for step in CATALOGUE)  # in the order they run
NOTEBOOKS: dict[str, str] = {step.name: step.notebook for step in CATALOGUE}
TITLES: dict[str, str] = {step.name: step.title for step in CATALOGUE}
READS: dict[str, tuple[tuple[str, str], ...]] = {step.name: step.reads for step in CATALOGUE}
PARAMS: dict[str, tuple[str, ...]] = {step.name: step.params for step in CATALOGUE}


def notebook_path(step: str) -> Path:
    """Return the source notebook of a step: ``notebooks/<name>.ipynb`` in the project."""
    return project_root() / "notebooks" / f"{NOTEBOOKS[step]}.ipynb"
