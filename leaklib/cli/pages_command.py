"""``leak pages``: build the static report site."""

from __future__ import annotations

import argparse

from leaklib import reports
from leaklib.cli.options import add_param_options, params_of
from leaklib.metadata import open_metadata_store
from leaklib.paths import resolve


def _pages(args: argparse.Namespace) -> int:
    params = params_of(args)
    store = open_metadata_store(params.metadata_store)
    index = reports.build_site(
        store,
        out=resolve(args.out),
        reports_root=resolve(args.reports),
        keep=params.pages_keep_reports,
    )
    print(f"report site written: open {index}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``leak pages``'s options and its handler."""
    parser.description = (
        "Build a static site from the metadata store: an index of all runs with a "
        "trend chart of the primary metric, and each run's rendered reports. Links are "
        "relative, so it works from a local folder or under any GitLab Pages path."
    )
    add_param_options(parser)  # -f/-p pick the metadata_store, as for `leak run`
    parser.add_argument("--out", default="public", help="site folder (default: public)")
    parser.add_argument(
        "--reports", default="reports", help="where `leak run` rendered reports (default: reports)"
    )
    parser.set_defaults(func=_pages)
