# `leak serve` for Cloud Run: the HTTP API over the notebook pipeline (README.md, "Serving").
#
#   docker build -t leak-serve .
#   docker run -e LEAK_API_TOKEN=... -p 8080:8080 leak-serve -f parameters/my-cloud.yaml
#
# Installed from requirements/main.lock only (--no-deps: nothing outside the lock), run as a
# non-root user, listening on $PORT (Cloud Run sets it; 8080 otherwise). Arguments after the
# image name are leak serve's own (-f PARAMS.yaml, -p KEY VALUE).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_WAIT_POLICY=PASSIVE \
    MLFLOW_DISABLE_TELEMETRY=true \
    LEAK_PROJECT_DIR=/app \
    PORT=8080

WORKDIR /app

# the lock first: this layer is rebuilt only when the lock changes
COPY requirements/main.lock requirements/main.lock
RUN pip install --no-cache-dir --no-deps -r requirements/main.lock

COPY pyproject.toml README.md ./
COPY leaklib leaklib
# the package itself, built with the locked setuptools (no build isolation: nothing fetched)
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && python -m leaklib.kernelspec

# what a run reads: its notebooks, parameter sets and the embedded dataset
COPY notebooks notebooks
COPY parameters parameters
COPY data data

# a non-root user; it owns /app for the local stores of the embedded default (a laptop or a
# test); on Cloud Run the parameter set names gs:// and firestore:// stores
RUN useradd --create-home --uid 10001 leak \
    && mkdir -p stores reports \
    && chown -R leak:leak /app
USER 10001:10001

EXPOSE 8080
ENTRYPOINT ["leak", "serve", "--host", "0.0.0.0"]
CMD []
