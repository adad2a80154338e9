"""Wall time and peak memory of ``leak run``, as ratios measured in one process tree.

    .venv/bin/python benchmarks/bench_pipeline.py [--pairs 3] [--scales 1 4 16] [-p KEY VALUE]
    make bench

Everything runs in a throw-away copy of the project (notebooks, parameters, lock, a link to
``data/``) under ``--work``, one command at a time, so the ratios hold on a shared machine:

1. **Framework against plain script.** ``leak run --no-cache`` and
   ``benchmarks/plain_pipeline.py`` (the same work in one process) interleaved A B A B,
   ``--pairs`` pairs; the median ratio of wall time and of peak RSS. Peak RSS is the largest
   sum, over samples every 50 ms, of the resident memory of the command's whole process tree
   (the runner and its kernel count together). The project first gets a champion from a
   smaller model (not timed), and the timed runs use ``promotion.min_improvement 0.5``, so
   every run scores the champion and bootstraps the difference and none replaces it.
2. **Step cache.** Per pair: a cold run (``--no-cache``), the same command with the cache
   (nothing changed) and with only an evaluate parameter changed (``permutation_repeats``
   5 -> 6, the evaluate cache entries forgotten first so each pair runs it); the median
   ratios against the cold run, and whether the metrics of every reused step are identical.
3. **Scaling.** The default table replicated 1x/4x/16x with new group ids; per step, the wall
   time (from the runner's progress lines) and the peak RSS of the process tree while it ran.

Prints a Markdown report (the tables of ``docs/benchmarks.md``) and writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
PLAIN = REPO / "benchmarks" / "plain_pipeline.py"
STEP_LINE = re.compile(r"\[\d/3\] (\w+)\s+(ok in|cached from|FAILED)")
TIMED = ["-p", "promotion.min_improvement", "0.5"]
# The evaluate-only change: one more permutation repeat than the default 5, so the changed
# run does a little more work than the cold one and its ratio is, if anything, too high.
EVALUATE_ONLY_REPEATS = 6


def make_project(root: Path) -> Path:
    """A fresh git checkout of the notebooks, parameters and lock, with ``data/`` linked."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for folder in ("notebooks", "parameters", "requirements"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], check=True)
    return root


def _tree_rss(process: psutil.Process) -> tuple[int, int, int]:
    """Return the summed RSS of a process tree, the RSS of its largest process and its root's.

    A child counts once it has lived a second: between fork and exec a child shares its
    parent's pages, and a sample taken then would count the parent twice (a git call, a
    kernel's start).
    """
    sizes = []
    settled = time.time() - 1.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            if member is process or member.create_time() < settled:
                sizes.append(member.memory_info().rss)
    return sum(sizes), max(sizes, default=0), sizes[0] if sizes else 0


def measure(command: list[str], *, cwd: Path, env: dict[str, str]) -> dict:
    """Run a command; return wall seconds, peak tree RSS (MiB), output and per-step figures.

    ``load`` is the one-minute load average before and after (the machine may be shared).
    """
    load_before = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    watched = psutil.Process(child.pid)
    samples: list[tuple[float, int, int, int]] = []  # (time, tree, largest process, root)
    marks: list[tuple[float, str, str]] = []  # (time, step, how) as progress lines arrive
    lines: list[str] = []

    def read() -> None:
        for line in child.stdout:
            lines.append(line)
            found = STEP_LINE.search(line)
            if found:
                marks.append((time.perf_counter(), found.group(1), found.group(2)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while child.poll() is None:
        samples.append((time.perf_counter(), *_tree_rss(watched)))
        time.sleep(0.05)
    reader.join()
    wall = time.perf_counter() - started
    error = child.stderr.read()
    if child.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {child.returncode}:\n{''.join(lines)}{error}"
        )
    steps, begin = {}, started
    for moment, step, how in marks:
        window = [(tree, one) for t, tree, one, _ in samples if begin <= t <= moment] or [(0, 0)]
        steps[step] = {
            "seconds": round(moment - begin, 2),
            "peak_mib": round(max(tree for tree, _ in window) / 2**20),
            "peak_process_mib": round(max(one for _, one in window) / 2**20),
            "cached": how == "cached from",
        }
        begin = moment
    if marks:
        window = [(tree, one) for t, tree, one, _ in samples if t >= begin] or [(0, 0)]
        steps["reports"] = {
            "seconds": round(started + wall - begin, 2),
            "peak_mib": round(max(tree for tree, _ in window) / 2**20),
            "peak_process_mib": round(max(one for _, one in window) / 2**20),
            "cached": False,
        }
    return {
        "wall": wall,
        "load": [load_before, round(os.getloadavg()[0], 2)],
        "peak_mib": max((tree for _, tree, _, _ in samples), default=0) / 2**20,
        "peak_process_mib": max((one for _, _, one, _ in samples), default=0) / 2**20,
        # the command's own process: for `leak run` the runner, beside its kernel
        "peak_root_mib": max((root for *_, root in samples), default=0) / 2**20,
        "stdout": "".join(lines),
        "steps": steps,
    }


def same_metrics(run: dict[str, float], plain: dict[str, float]) -> bool:
    """True when every metric of the run is in ``plain`` and equal (NaN equals NaN)."""
    return len(run) >= 10 and all(
        k in plain
        and (
            run[k] == plain[k]
            or (run[k] != run[k] and plain[k] != plain[k])
            or abs(run[k] - plain[k]) < 1e-9
        )
        for k in run
    )


def forget_step(project: Path, step: str) -> None:
    """Delete the step cache's entries for ``step`` (local metadata store of the project)."""
    for entry in (project / "stores/metadata/cache").glob("*.json"):
        if json.loads(entry.read_text()).get("step") == step:
            entry.unlink()


def run_id_of(output: str) -> str:
    return re.search(r"^run (\S+):", output, re.M).group(1)


def record(project: Path, run_id: str) -> dict:
    return json.loads((project / f"stores/metadata/runs/{run_id}.json").read_text())


def scaled_table(project: Path, factor: int, *, row_group_rows: int | None = None) -> str:
    """Write the default table replicated ``factor`` times with new group ids; its path.

    Row groups hold as many rows as the source's (``leak simulate`` writes 65,536), unless
    ``row_group_rows`` says otherwise.
    """
    source = REPO / "data/l-town-leaks.parquet"
    if factor == 1 and row_group_rows is None:
        return "data/l-town-leaks.parquet"
    row_group_rows = row_group_rows or pq.ParquetFile(source).metadata.row_group(0).num_rows
    table = pd.read_parquet(source)
    span = int(table["scenario_id"].max()) + 1
    copies = [table.assign(scenario_id=table["scenario_id"] + k * span) for k in range(factor)]
    path = project / f"scaled-{factor}x-{row_group_rows}.parquet"
    pd.concat(copies, ignore_index=True).to_parquet(
        path, index=False, row_group_size=row_group_rows
    )
    return path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--scales", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument(
        "--plain-scales",
        type=int,
        nargs="*",
        help="the scales at which the plain script runs too (default: every one of --scales)",
    )
    parser.add_argument(
        "--before-cache",
        action="store_true",
        help="for a checkout older than the step cache: no --no-cache flag, no cache re-runs",
    )
    parser.add_argument(
        "--pairs-only",
        action="store_true",
        help="only the paired cold runs: no cache re-runs (their table is left out)",
    )
    parser.add_argument(
        "--report", type=Path, help="print the tables of a results file; run nothing"
    )
    parser.add_argument("-f", dest="files", action="append", default=[])
    parser.add_argument("-p", dest="overrides", action="append", nargs=2, default=[])
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "bench" / "results.json")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return
    project = make_project(args.work / "project")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(LEAK_PROJECT_DIR=str(project), MLFLOW_DISABLE_TELEMETRY="true")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    extra = [item for name in args.files for item in ("-f", name)]
    extra += [item for pair in args.overrides for item in ("-p", *pair)]
    leak = [sys.executable, "-m", "leaklib.cli", "run", *extra]

    cold_flag = [] if args.before_cache else ["--no-cache"]
    seed = measure([*leak, *cold_flag, "-p", "model.params.max_iter", "30"], cwd=project, env=env)
    champion = project / "stores/metadata/runs" / f"{run_id_of(seed['stdout'])}.json"
    plain = [sys.executable, str(PLAIN), *extra, *TIMED, "--champion", str(champion)]

    results: dict = {"pairs": [], "cache": []}
    for number in range(args.pairs):
        cold = measure([*leak, *cold_flag, *TIMED], cwd=project, env=env)
        reference = measure(plain, cwd=project, env=env)
        if args.before_cache or args.pairs_only:
            warm = evaluate = cold
        else:
            warm = measure([*leak, *TIMED], cwd=project, env=env)
            forget_step(project, "evaluate")  # else pair 2 finds pair 1's changed evaluate
            changed = ["-p", "permutation_repeats", str(EVALUATE_ONLY_REPEATS)]
            evaluate = measure([*leak, *TIMED, *changed], cwd=project, env=env)
        cold_run = record(project, run_id_of(cold["stdout"]))
        warm_run = record(project, run_id_of(warm["stdout"]))
        eval_run = record(project, run_id_of(evaluate["stdout"]))
        plain_out = json.loads(reference["stdout"].strip().splitlines()[-1])
        plain_metrics = plain_out["metrics"]
        cv = {k: v for k, v in cold_run["metrics"].items() if k.startswith("cv_")}
        results["pairs"].append(
            {
                "leak_wall": cold["wall"],
                "plain_wall": reference["wall"],
                "leak_peak_mib": cold["peak_mib"],
                "plain_peak_mib": reference["peak_mib"],
                "leak_process_mib": cold["peak_process_mib"],
                "plain_process_mib": reference["peak_process_mib"],
                "leak_runner_mib": cold["peak_root_mib"],
                "same_metrics_as_plain": same_metrics(cold_run["metrics"], plain_metrics),
                "metrics_compared": len(cold_run["metrics"]),
                "leak_load": cold["load"],
                "plain_load": reference["load"],
                "leak_steps": cold["steps"],
                "plain_steps": plain_out["seconds"],
            }
        )
        if args.pairs_only:
            print(
                f"pair {number + 1}: {json.dumps(results['pairs'][-1]['leak_steps'])}", flush=True
            )
            _save(args.out, results)
            continue
        results["cache"].append(
            {
                "cold_wall": cold["wall"],
                "warm_wall": warm["wall"],
                "evaluate_only_wall": evaluate["wall"],
                "warm_all_cached": all(
                    v["cached"] for s, v in warm["steps"].items() if s != "reports"
                ),
                "warm_same_metrics": warm_run["metrics"].keys() == cold_run["metrics"].keys()
                and same_metrics(warm_run["metrics"], cold_run["metrics"]),
                "evaluate_only_cached": [s for s, v in evaluate["steps"].items() if v["cached"]],
                "evaluate_only_same_cv": {
                    k: v for k, v in eval_run["metrics"].items() if k.startswith("cv_")
                }
                == cv,
                "evaluate_only_same_snapshot_model": (
                    eval_run["snapshot"]["sha256"] == cold_run["snapshot"]["sha256"]
                    and eval_run["model"]["sha256"] == cold_run["model"]["sha256"]
                ),
            }
        )
        print(f"pair {number + 1}: {json.dumps(results['pairs'][-1]['leak_steps'])}", flush=True)
        _save(args.out, results)

    results["scaling"] = {}
    for factor in args.scales:
        source = scaled_table(project, factor)
        run = measure(
            [*leak, *cold_flag, *TIMED, "-p", "dataset.source", source], cwd=project, env=env
        )
        results["scaling"][factor] = {"leak": run}
        if args.plain_scales is None or factor in args.plain_scales:
            alone = measure([*plain, "-p", "dataset.source", source], cwd=project, env=env)
            results["scaling"][factor].update(
                plain_wall=alone["wall"],
                plain_peak_mib=alone["peak_mib"],
                plain_steps=json.loads(alone["stdout"].strip().splitlines()[-1])["seconds"],
            )
        for item in (run,):
            item.pop("stdout")
        print(f"{factor}x: {json.dumps(results['scaling'][factor])}", flush=True)
        _save(args.out, results)
    print(report(results))


def _save(path: Path, results: dict) -> None:
    """Write what has been measured so far (a long scaling run can be read while it goes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str))


def report(results: dict) -> str:
    """The Markdown tables of docs/benchmarks.md."""
    pairs, cache = results.get("pairs") or [], results.get("cache") or []
    out = _pairs_report(pairs, cache) if pairs else []
    out += [
        "| rows | step | `leak run` wall | peak RSS, tree | peak RSS, largest process "
        "| plain wall |",
        "|---|---|---|---|---|---|",
    ]
    for factor, scaled in results.get("scaling", {}).items():
        plain = scaled.get("plain_steps") or {}
        for step, figures in scaled["leak"]["steps"].items():
            shown = f"{plain[step]:.1f} s" if step in plain else ""
            out.append(
                f"| {factor}x | {step} | {figures['seconds']:.1f} s | {figures['peak_mib']} MiB | "
                f"{figures.get('peak_process_mib', '')} MiB | {shown} |"
            )
        total = (
            f"{scaled['plain_wall']:.1f} s ({scaled['plain_peak_mib']:.0f} MiB)"
            if "plain_wall" in scaled
            else "not run"
        )
        out.append(
            f"| {factor}x | **total** | {scaled['leak']['wall']:.1f} s | "
            f"{scaled['leak']['peak_mib']:.0f} MiB | "
            f"{scaled['leak'].get('peak_process_mib', 0):.0f} MiB | {total} |"
        )
    return "\n".join(out)


def _pairs_report(pairs: list[dict], cache: list[dict]) -> list[str]:
    """The tables of the paired runs and of the cache re-runs."""
    med = statistics.median
    wall = med(p["leak_wall"] / p["plain_wall"] for p in pairs)
    rss = med(p["leak_peak_mib"] / p["plain_peak_mib"] for p in pairs)
    one = med(p.get("leak_process_mib", 0) / p.get("plain_process_mib", 1) for p in pairs)
    out = [
        "| | wall | peak RSS, process tree | peak RSS, largest process |",
        "|---|---|---|---|",
        f"| `leak run --no-cache` | {med(p['leak_wall'] for p in pairs):.1f} s | "
        f"{med(p['leak_peak_mib'] for p in pairs):.0f} MiB | "
        f"{med(p.get('leak_process_mib', 0) for p in pairs):.0f} MiB |",
        f"| plain script | {med(p['plain_wall'] for p in pairs):.1f} s | "
        f"{med(p['plain_peak_mib'] for p in pairs):.0f} MiB | "
        f"{med(p.get('plain_process_mib', 0) for p in pairs):.0f} MiB |",
        f"| ratio (median of {len(pairs)} pairs) | **{wall:.2f}** | **{rss:.2f}** | "
        f"**{one:.2f}** |",
        "",
        "| pair | load average (before/after each) | wall ratio | tree ratio | largest-process "
        "ratio | runner peak | metrics equal (compared) |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, p in enumerate(pairs, 1):
        loads = " ".join(
            "/".join(f"{v:.1f}" for v in p[key]) for key in ("leak_load", "plain_load") if key in p
        )
        out.append(
            f"| {number} | {loads} | {p['leak_wall'] / p['plain_wall']:.3f} | "
            f"{p['leak_peak_mib'] / p['plain_peak_mib']:.3f} | "
            f"{p.get('leak_process_mib', 0) / p.get('plain_process_mib', 1):.3f} | "
            f"{p.get('leak_runner_mib', 0):.0f} MiB | {p['same_metrics_as_plain']} "
            f"({p.get('metrics_compared', '')}) |"
        )
    out.append("")
    if not cache:
        return out
    out += [
        "| re-run | wall (median) | ratio to cold (median) | reused steps identical |",
        "|---|---|---|---|",
        f"| cold (`--no-cache`) | {med(c['cold_wall'] for c in cache):.1f} s | 1.00 | |",
        f"| nothing changed | {med(c['warm_wall'] for c in cache):.1f} s | "
        f"**{med(c['warm_wall'] / c['cold_wall'] for c in cache):.3f}** | "
        f"{all(c['warm_all_cached'] and c['warm_same_metrics'] for c in cache)} |",
        f"| only `permutation_repeats` changed (5 -> 6) | {med(c['evaluate_only_wall'] for c in cache):.1f} s | "
        f"**{med(c['evaluate_only_wall'] / c['cold_wall'] for c in cache):.3f}** | "
        f"{all(c['evaluate_only_same_cv'] and c['evaluate_only_same_snapshot_model'] for c in cache)} |",
        "",
    ]
    return out


if __name__ == "__main__":
    main()
