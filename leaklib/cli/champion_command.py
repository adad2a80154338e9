"""``leak champion`` and ``leak promote``: show the champion, or make one by hand."""

from __future__ import annotations

import argparse

from leaklib import champion, gate
from leaklib.cli.options import add_param_options, params_of
from leaklib.metadata import open_metadata_store
from leaklib.metrics import CATALOGUE


def _champion(args: argparse.Namespace) -> int:
    params = params_of(args)
    name = params.dataset.model_name
    store = open_metadata_store(params.metadata_store)
    pointer = champion.current_champion(store, model_name=name)
    if pointer is None:
        print(f"no champion yet for model {name!r} in {store.uri}")
        return 0
    print(f"champion of {name}: run {pointer['run_id']} (version {pointer.get('version')})")
    print(f"  model uri:   {pointer['model_uri']}")
    if pointer.get("model_sha256"):
        print(f"  model hash:  {pointer['model_sha256']}")
    print(f"  promoted at: {pointer['promoted_at']} by {pointer.get('decided_by')}")
    print(f"  reason:      {pointer['reason']}")
    shown = {k: v for k, v in (pointer.get("metrics") or {}).items() if k in CATALOGUE}
    if shown:
        print("  metrics:     " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    print("history (newest first):")
    for entry in reversed(pointer.get("history") or []):
        print(
            f"  {entry['promoted_at']}  run {entry['run_id']}  version {entry.get('version')}  "
            f"{entry.get('decided_by')}: {entry['reason']}"
        )
    return 0


def _promote(args: argparse.Namespace) -> int:
    params = params_of(args)
    store = open_metadata_store(params.metadata_store)
    decision = gate.manual_promotion(store, run_id=args.run_id, params=params, reason=args.reason)
    previous = decision.previous_champion or {}
    print(
        f"run {args.run_id} (version {decision.challenger['version']}) is now the champion of "
        f"{params.dataset.model_name}; previous: {previous.get('run_id') or 'none'}"
    )
    return 0


def configure_champion(shown: argparse.ArgumentParser) -> None:
    """Add ``leak champion``'s options and its handler."""
    add_param_options(shown)
    shown.set_defaults(func=_champion)


def configure_promote(manual: argparse.ArgumentParser) -> None:
    """Add ``leak promote``'s options and its handler."""
    manual.add_argument("run_id", metavar="RUN_ID", help="the run whose model becomes the champion")
    manual.add_argument(
        "--reason", required=True, help="why, in one sentence (kept in the history)"
    )
    add_param_options(manual)
    manual.set_defaults(func=_promote)
