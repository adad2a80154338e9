"""leaklib.pipeline.cache: step keys, lookups and what a cached re-run of the CLI records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from leaklib import params as P
from leaklib import runs
from leaklib.metadata import LocalMetadataStore
from leaklib.pipeline import cache, runner
from leaklib.run_record import RunRecord
from tests.conftest import leak

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "source": ["# Title"], "metadata": {}},
        {"cell_type": "code", "source": "x = 1", "outputs": [], "metadata": {}},
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.fixture
def notebook(tmp_path) -> Path:
    path = tmp_path / "01_extract.ipynb"
    path.write_text(json.dumps(NOTEBOOK))
    return path


def _key(step, notebook, params, run=None, **declared):
    return cache.step_key(step, notebook=notebook, declared=declared, run=run or {}, params=params)


def test_notebook_hash_ignores_outputs_and_counts(notebook):
    before = cache.notebook_hash(notebook)
    executed = json.loads(notebook.read_text())
    executed["cells"][1].update(outputs=[{"output_type": "stream", "text": "1"}], execution_count=3)
    notebook.write_text(json.dumps(executed))
    assert cache.notebook_hash(notebook) == before
    executed["cells"][0]["source"] = ["# Another title"]
    notebook.write_text(json.dumps(executed))
    assert cache.notebook_hash(notebook) != before


def test_extract_key_follows_the_source_content_and_the_parameters(notebook, params, table):
    table.to_parquet(params.dataset.source)
    first = _key("extract", notebook, params, seed=1)
    assert first.key == _key("extract", notebook, params, seed=1, run_id="other").key
    assert first.key != _key("extract", notebook, params, seed=2).key
    table.head(100).to_parquet(params.dataset.source)
    assert _key("extract", notebook, params, seed=1).key != first.key


def test_a_bigquery_extract_is_never_cached(notebook, params):
    values = params.to_plain()
    values["dataset"]["source"] = "bigquery://my-project.data.readings"
    key = _key("extract", notebook, P.validate(values))
    assert key.uncacheable_reason and "snapshot:<sha256>" in key.uncacheable_reason
    found = cache.lookup(LocalMetadataStore(Path(params.metadata_store)), key)
    assert not found.hit and "no content version" in found.explain()


def test_evaluate_key_needs_the_upstream_hashes(notebook, params, table):
    table.to_parquet(params.dataset.source)
    key = _key("evaluate", notebook, params, run={"snapshot": {"sha256": "a"}})
    assert key.uncacheable_reason == "the run has no holdout hash yet"
    run = {"snapshot": {"sha256": "a"}, "holdout": {"sha256": "b"}, "model": {"sha256": "c"}}
    other = {**run, "model": {"sha256": "d"}}
    assert (
        _key("evaluate", notebook, params, run=run).key
        != _key("evaluate", notebook, params, run=other).key
    )


def test_lookup_hits_a_succeeded_step_and_names_what_changed_on_a_miss(notebook, params, table):
    table.to_parquet(params.dataset.source)
    store = LocalMetadataStore(Path(params.metadata_store))
    runs.start_run(store, run_id="earlier", params={}, param_files=[], origin="test")
    runs.start_step(store, "earlier", "extract")
    runs.finish_step(store, "earlier", "extract")
    key = _key("extract", notebook, params, threshold=0.5)
    cache.remember(store, key, run_id="earlier", outputs={"snapshot": None})
    found = cache.lookup(store, key)
    assert found.hit and found.explain() == "cached from run earlier"
    missed = cache.lookup(store, _key("extract", notebook, params, threshold=0.4))
    assert not missed.hit
    assert missed.explain() == "runs: changed parameter threshold"


def test_changing_dataset_sample_misses_the_extract_cache(params, table):
    """01_extract declares dataset, so its sample is part of the key the runner computes."""
    table.to_parquet(params.dataset.source)
    store = LocalMetadataStore(Path(params.metadata_store))
    runs.start_run(store, run_id="earlier", params={}, param_files=[], origin="test")
    runs.start_step(store, "earlier", "extract")
    runs.finish_step(store, "earlier", "extract")
    notebook = runner.notebook_path("extract")

    def key(sample):
        values = params.to_plain()
        values["dataset"]["sample"] = sample
        changed = P.validate(values)
        declared = runner.step_parameters("extract", changed)
        return cache.step_key(
            "extract", notebook=notebook, declared=declared, run={}, params=changed
        )

    cache.remember(store, key({"groups": 12}), run_id="earlier", outputs={"snapshot": None})
    assert cache.lookup(store, key({"groups": 12})).hit
    for other in (None, {"groups": 13}, {"fraction": 0.5}):
        missed = cache.lookup(store, key(other))
        assert not missed.hit and missed.explain() == "runs: changed parameter dataset"


def test_step_outputs_name_fields_and_the_keys_of_merged_mappings():
    before = {"status": "running", "metrics": {"cv_a": 1}, "snapshot": {"sha256": "s"}}
    after = {
        **before,
        "metrics": {"cv_a": 1, "holdout_b": 2},
        "promotion": {"decision": "promoted"},
    }
    outputs = cache.step_outputs(RunRecord.from_doc(before), RunRecord.from_doc(after))
    assert outputs == {"metrics": ["holdout_b"], "promotion": None}


# --- the CLI, on a copy of the session's smoke project -------------------------------------


@pytest.fixture(scope="module")
def cached(smoke_run, tmp_path_factory):
    """The smoke project copied, then `leak run` again: nothing changed, then one evaluate
    parameter (the permutation importance's repeats, which only 03_evaluate declares)."""
    project = tmp_path_factory.mktemp("cached") / "project"
    shutil.copytree(smoke_run.project, project, symlinks=True)
    explain = leak(project, "run", "-f", "parameters/smoke.yaml", "--explain")
    warm = leak(project, "run", "-f", "parameters/smoke.yaml")
    changed = leak(project, "run", "-f", "parameters/smoke.yaml", "-p", "permutation_repeats", "3")
    return project, smoke_run.record(), explain, warm, changed


@pytest.mark.slow
def test_explain_says_every_step_would_come_from_the_cache(cached):
    _, first, explain, _, _ = cached
    assert explain.returncode == 0, explain.stderr
    assert explain.stdout.splitlines() == [
        f"{step:<9} cached from run {first['run_id']}" for step in runs.STEPS
    ]


@pytest.mark.slow
def test_a_rerun_with_nothing_changed_reuses_every_step_with_identical_metrics(cached):
    project, first, _, warm, _ = cached
    assert warm.returncode == 0, warm.stderr
    record = warm.record(warm.run_ids()[-2])
    assert record["run_id"] != first["run_id"] and record["status"] == "succeeded"
    assert {s: v["cached_from"] for s, v in record["steps"].items()} == dict.fromkeys(
        runs.STEPS, first["run_id"]
    )
    for field in ("snapshot", "holdout", "metrics", "mlflow", "validation"):
        assert record[field] == first[field], field
    assert record["model"]["sha256"] == first["model"]["sha256"]
    assert record["promotion"]["cached_from"] == first["run_id"]
    assert record["promotion"]["decision"] == first["promotion"]["decision"]
    for name in ("01_extract", "02_train", "03_evaluate"):
        page = (project / "reports" / record["run_id"] / f"{name}.html").read_text()
        assert f"cached from <code>{first['run_id']}</code>" in page
        assert f"run {record['run_id']}" in page
    assert "carried over: the gate did not run again" in page


@pytest.mark.slow
def test_changing_an_evaluate_parameter_runs_only_evaluate(cached):
    _, first, _, _, changed = cached
    assert changed.returncode == 0, changed.stderr
    assert "[3/3] evaluate  ok in" in changed.stdout
    record = changed.record(changed.run_ids()[-1])
    assert record["steps"]["train"]["cached_from"] == first["run_id"]
    assert "cached_from" not in record["steps"]["evaluate"]
    assert not (record["promotion"] or {}).get("cached_from")
    cv = {k: v for k, v in first["metrics"].items() if k.startswith("cv_")}
    assert {k: v for k, v in record["metrics"].items() if k.startswith("cv_")} == cv
