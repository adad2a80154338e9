"""How hard is the embedded default dataset? Grouped 5-fold cross-validation by scenario.

Fits, on the committed ``data/l-town-leaks.parquet``:

- gradient boosting (``HistGradientBoostingClassifier(max_iter=300)``) on every feature,
- logistic regression on standardised features,
- gradient boosting on the time features only (``hour_sin``, ``hour_cos``, ``day_of_week``),
  which should be near chance: elapsed or calendar time alone must not predict a leak.

Folds are grouped by ``scenario_id`` (no scenario is in both training and test). Prints the mean
and standard deviation over folds of ROC-AUC, PR-AUC and recall at 1 % false-positive rate.

    .venv/bin/python benchmarks/dataset_difficulty.py                 # the whole dataset
    .venv/bin/python benchmarks/dataset_difficulty.py --max-scenarios 40  # a fast look
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before scikit-learn loads OpenMP

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import ClassifierMixin  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "l-town-leaks.parquet"
TIME_FEATURES = ["hour_sin", "hour_cos", "day_of_week"]
NOT_FEATURES = {"scenario_id", "timestamp", "leaks"}


def recall_at_fpr(y: np.ndarray, score: np.ndarray, *, fpr: float = 0.01) -> float:
    """Return the highest recall reachable with a false-positive rate of at most ``fpr``."""
    false_pos, true_pos, _ = roc_curve(y, score)
    return float(true_pos[false_pos <= fpr].max())


def grouped_scores(
    frame: pd.DataFrame,
    columns: list[str],
    make_model: Callable[[], ClassifierMixin],
    *,
    folds: int,
) -> pd.DataFrame:
    """Return one row of ROC-AUC, PR-AUC and recall at 1 % FPR per grouped fold."""
    x, y, groups = frame[columns].to_numpy(), frame["leaks"].to_numpy(), frame["scenario_id"]
    rows = []
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        model = make_model().fit(x[train], y[train])
        score = model.predict_proba(x[test])[:, 1]
        rows.append(
            {
                "roc_auc": roc_auc_score(y[test], score),
                "pr_auc": average_precision_score(y[test], score),
                "recall_at_1pct_fpr": recall_at_fpr(y[test], score),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """Print the grouped cross-validation table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Parquet file to score")
    parser.add_argument(
        "--max-scenarios", type=int, default=None, help="use only the first N scenario ids"
    )
    parser.add_argument("--folds", type=int, default=5, help="grouped folds (default 5)")
    args = parser.parse_args(argv)

    frame = pd.read_parquet(args.data)
    if args.max_scenarios is not None:
        if args.max_scenarios < args.folds:
            parser.error(f"--max-scenarios must be at least --folds ({args.folds})")
        keep = np.sort(frame["scenario_id"].unique())[: args.max_scenarios]
        frame = frame[frame["scenario_id"].isin(keep)].reset_index(drop=True)
    features = [c for c in frame.columns if c not in NOT_FEATURES]
    print(
        f"{args.data.name}: {frame['scenario_id'].nunique()} scenarios, {len(frame)} rows, "
        f"{len(features)} features, leak rows {frame['leaks'].mean():.1%}; "
        f"grouped {args.folds}-fold by scenario_id"
    )

    candidates: list[tuple[str, list[str], Callable[[], ClassifierMixin]]] = [
        (
            "gradient boosting",
            features,
            lambda: HistGradientBoostingClassifier(max_iter=300, random_state=0),
        ),
        (
            "logistic regression (standardised)",
            features,
            lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        ),
        (
            "time features only (gradient boosting)",
            TIME_FEATURES,
            lambda: HistGradientBoostingClassifier(max_iter=300, random_state=0),
        ),
    ]
    table = []
    for name, columns, make_model in candidates:
        started = time.perf_counter()
        scores = grouped_scores(frame, columns, make_model, folds=args.folds)
        row = {"model": name}
        for metric in scores.columns:
            row[metric] = f"{scores[metric].mean():.3f} +- {scores[metric].std():.3f}"
        row["seconds"] = f"{time.perf_counter() - started:.0f}"
        table.append(row)
    print(pd.DataFrame(table).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
