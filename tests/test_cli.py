"""leaklib.cli: the `leak` command's parsers, handlers and messages (in process)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from leaklib import champion, cli, run_record
from leaklib import simulate as sim
from leaklib.cli import simulate as simulate_cli
from leaklib.metadata import RUNS, LocalMetadataStore


def _named(*args: str, store: str, model_name: str) -> int:
    return cli.main([*args, "-p", "metadata_store", store, "-p", "dataset.model_name", model_name])


def test_the_package_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "leaklib.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: leak ")


HEAVY = ("fastapi", "uvicorn", "papermill", "matplotlib")
_LOADED = (
    "import contextlib, io, sys\n"
    "from leaklib import cli\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
    "    cli.main(sys.argv[1:])\n"
    f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
)


@pytest.mark.parametrize("argv", [["--help"], ["params"], ["params", "--help"]])
def test_light_commands_load_no_web_stack_pipeline_or_plotting(argv):
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, *argv], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_called_command_is_the_first_word_that_is_not_an_option():
    assert cli.chosen_command(["-v", "serve", "--port", "1"]) == "serve"
    assert cli.chosen_command(["--help"]) is None
    assert cli.chosen_command(["no-such-command"]) is None


def test_an_unknown_command_is_refused_naming_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["no-such-command"])
    assert exit_.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


# --- leak params ----------------------------------------------------------------------------


def test_params_lists_every_parameter_with_its_default(capsys):
    assert cli.main(["params"]) == 0
    out = capsys.readouterr().out
    assert "cv_folds  (integer (>= 2, <= 20))" in out and "default: 5" in out
    assert "dataset.source  (text)" in out and "default: data/l-town-stream.parquet" in out
    assert "dataset.max_groups  (integer (> 0) or null)" in out and "(Optional)" not in out


def test_params_stops_quietly_when_its_reader_closes_the_pipe():
    """`leak params | head`: the reader goes away before the listing is written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "leaklib.cli", "params"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # closed before the command has loaded, so every write fails
    stderr = process.stderr.read()
    assert process.wait() == cli.SIGPIPE_EXIT
    assert stderr == ""


def test_params_prints_the_merged_set(capsys):
    assert cli.main(["params", "-p", "dataset.source", "mine.parquet"]) == 0
    assert "dataset:\n  source: mine.parquet\n" in capsys.readouterr().out


def test_params_says_where_an_old_key_moved(capsys):
    assert cli.main(["params", "-p", "source", "mine.parquet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "leak params: error: parameter 'source' has moved: it is now dataset.source"
    )


def test_params_check_fails_on_a_drifted_cell_and_sync_fixes_it(tmp_path, monkeypatch, capsys):
    for folder in ("notebooks", "parameters"):
        shutil.copytree(Path(__file__).parents[1] / folder, tmp_path / folder)
    monkeypatch.setenv("LEAK_PROJECT_DIR", str(tmp_path))
    assert cli.main(["params", "--sync-notebooks", "--check"]) == 0
    default = tmp_path / "parameters/default.yaml"
    default.write_text(default.read_text().replace("seed: 42", "seed: 7"))

    assert cli.main(["params", "--sync-notebooks", "--check"]) == 1
    out = capsys.readouterr().out
    assert "out of date: " in out and out.count("out of date") == 2  # train and evaluate
    assert "run `leak params --sync-notebooks` to rewrite them" in out
    assert cli.main(["params", "--sync-notebooks"]) == 0
    assert capsys.readouterr().out.count("updated: ") == 2
    assert cli.main(["params", "--sync-notebooks", "--check"]) == 0


def test_params_check_goes_with_sync_notebooks(capsys):
    assert cli.main(["params", "--check"]) == 2
    assert "leak params: error: --check goes with --sync-notebooks" in capsys.readouterr().err


# --- leak champion and leak promote ---------------------------------------------------------


def test_champion_command_says_when_there_is_no_champion(tmp_path, capsys):
    assert _named("champion", store=str(tmp_path), model_name="nobody") == 0
    assert "no champion yet for model 'nobody'" in capsys.readouterr().out


def test_champion_command_prints_the_champion_and_its_history(promotion_history, capsys):
    name = promotion_history.params.dataset.model_name
    _named("champion", store=str(promotion_history.store.folder), model_name=name)
    out = capsys.readouterr().out
    assert out.startswith(f"champion of {name}: run run-stronger")
    assert out.index("run run-stronger") < out.rindex("run run-first")


def test_promote_command_records_a_manual_promotion(
    promotion_history, local_mlflow, restore_champion_alias, tmp_path, capsys
):
    store = LocalMetadataStore(shutil.copytree(promotion_history.store.folder, tmp_path / "m"))
    name = promotion_history.params.dataset.model_name
    code = _named(
        "promote",
        "run-first",
        "--reason",
        "rollback after a field incident",
        store=str(store.folder),
        model_name=name,
    )
    pointer = champion.current_champion(store, model_name=name)
    record = run_record.get_run(store, "run-first")
    assert code == 0 and pointer["run_id"] == "run-first" and pointer["decided_by"] == "manual"
    assert record.promotion.reason == "Promoted by hand: rollback after a field incident"
    assert "previous: run-stronger" in capsys.readouterr().out


@pytest.fixture
def restore_champion_alias(promotion_history, local_mlflow):
    """Put the registry's champion alias back where the shared gate history left it."""
    yield
    name = promotion_history.params.dataset.model_name
    version = promotion_history.records["stronger"].model.version
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)


def test_promote_command_names_an_unknown_run(tmp_path, capsys):
    code = _named("promote", "no-such-run", "--reason", "x", store=str(tmp_path), model_name="m")
    assert code == 2 and "run 'no-such-run' not found" in capsys.readouterr().err


def test_promote_command_needs_a_reason(capsys):
    with pytest.raises(SystemExit):
        cli.main(["promote", "run-a"])
    assert "the following arguments are required: --reason" in capsys.readouterr().err


# --- leak pages -----------------------------------------------------------------------------


@pytest.fixture
def reported(tmp_path: Path) -> Path:
    """A metadata store with one finished run and its rendered evaluation report."""
    store = LocalMetadataStore(tmp_path / "metadata")
    run = {
        "run_id": "run-a",
        "status": "succeeded",
        "created_at": "2026-11-28T21:00:00+00:00",
        "params": {"dataset": {"source": "x.parquet"}},
        "steps": {"evaluate": {"status": "succeeded"}},
        "metrics": {"holdout_roc_auc": 0.9},
    }
    store.create(RUNS, "run-a", run)
    (tmp_path / "reports" / "run-a").mkdir(parents=True)
    (tmp_path / "reports" / "run-a" / "03_evaluate.html").write_text("<html></html>")
    return tmp_path


def test_leak_pages_builds_the_site_from_the_named_store(reported, capsys):
    code = cli.main(
        [
            "pages",
            "-p", "metadata_store", str(reported / "metadata"),
            "--reports", str(reported / "reports"),
            "--out", str(reported / "site"),
        ]
    )  # fmt: skip
    assert code == 0 and "report site written: open " in capsys.readouterr().out
    assert (reported / "site" / "run-a" / "03_evaluate.html").is_file()


def test_leak_pages_refuses_an_unknown_parameter(tmp_path, capsys):
    assert cli.main(["pages", "-p", "metadata", "x", "--out", str(tmp_path / "site")]) == 2
    assert "leak pages: error: unknown parameter 'metadata'" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


# --- leak simulate --------------------------------------------------------------------------


def test_the_simulate_parser_registers_knobs() -> None:
    parser = argparse.ArgumentParser(prog="leak")
    subparsers = parser.add_subparsers(dest="command")
    simulate_cli.configure(subparsers.add_parser("simulate"))
    args = parser.parse_args(
        [
            "simulate",
            "--scenarios",
            "4",
            "--leak-diameter-cm",
            "2",
            "5",
            "--no-random-start-weekday",
        ]
    )
    assert args.func is simulate_cli.run_simulate
    assert "chance that a scenario has one leak (default: 0.75)" in " ".join(
        subparsers.choices["simulate"].format_help().split()
    )
    assert args.scenarios == 4 and args.seed == sim.DEFAULT_SEED
    recipe = simulate_cli.recipe_from_args(args)
    assert recipe.leak_diameter_cm == (2.0, 5.0)
    assert recipe.random_start_weekday is False
    assert recipe.leak_probability == sim.SimulationRecipe().leak_probability


def test_knob_comments_are_the_recipe_fields_help():
    comments = simulate_cli._knob_comments()
    assert comments["leak_probability"] == "chance that a scenario has one leak"


def test_simulate_refuses_bad_knobs_with_exit_code_2(tmp_path, capsys) -> None:
    out = tmp_path / "x.parquet"
    code = cli.main(["simulate", "--scenarios", "1", "--leak-probability", "2", "--out", str(out)])
    assert code == 2
    assert capsys.readouterr().err == (
        "leak simulate: error: leak_probability must be a probability in [0, 1], got 2.0\n"
    )
    assert not out.exists()


def test_simulate_without_the_solver_says_what_is_missing(tmp_path, capsys, monkeypatch):
    def missing(**_):
        raise ModuleNotFoundError("No module named 'wntr'")

    monkeypatch.setattr(sim, "simulate_dataset", missing)
    code = cli.main(["simulate", "--scenarios", "1", "--out", str(tmp_path / "x.parquet")])
    assert code == 2
    assert capsys.readouterr().err == "leak simulate: error: No module named 'wntr'\n"
