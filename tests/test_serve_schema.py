"""leak serve against its own OpenAPI document, with Schemathesis (property-based; slow).

Every operation gets generated requests, valid and invalid, bounded in examples and time,
all with the token: no answer may be a 5xx, and every answer must be a documented status
with the documented content type and a body that matches its schema. Runs started here go to
a stand-in command (`true`). The number of cases is printed at the end (`-s`).
"""

from __future__ import annotations

import collections

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from leaklib import serve
from tests.serving import AUTH, TOKEN, predict_body, smoke_files

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
MAX_EXAMPLES = 40  # per operation and generation mode
CASES: collections.Counter[str] = collections.Counter()
STATUSES: collections.Counter[int] = collections.Counter()


@pytest.fixture(scope="module")
def app(smoke_run):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAK_PROJECT_DIR", str(smoke_run.project))
        yield serve.create_app(
            files=smoke_files(smoke_run.project),
            token=TOKEN,
            worker=serve.RunWorker(["true"]),
            max_records=20,  # keeps generated batches small; the limit is documented as maxItems
        )
    print(
        f"\nschemathesis: {sum(CASES.values())} cases "
        f"({', '.join(f'{k} {v}' for k, v in sorted(CASES.items()))}); "
        f"statuses {dict(sorted(STATUSES.items()))}"
    )


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


OPERATIONS = [
    ("GET", "/health"),
    ("POST", "/runs"),
    ("GET", "/runs"),
    ("GET", "/runs/{run_id}"),
    ("GET", "/runs/{run_id}/reports/{step}"),
    ("GET", "/champion"),
    ("POST", "/predict"),
]


def test_the_operations_tested_are_all_the_api_has(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


CASES_OF = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in GenerationMode
    if path != "/health" or mode == GenerationMode.POSITIVE  # it takes no input to get wrong
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method,path,mode", CASES_OF)
def test_generated_requests_get_documented_answers_and_no_5xx(api_schema, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same cases every time: a failure here is reproducible
        database=None,
    )
    def check(case):
        response = case.call_and_validate(headers=AUTH, checks=CHECKS)
        CASES[f"{method} {path}"] += 1
        STATUSES[response.status_code] += 1

    check()


def test_a_real_batch_gets_a_200_that_matches_the_schema(api_schema, smoke_run):
    operation = api_schema["/predict"]["POST"]
    body = predict_body(smoke_run.project, rows=100)
    big = serve.create_app(files=smoke_files(smoke_run.project), token=TOKEN)
    case = operation.Case(body=body)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAK_PROJECT_DIR", str(smoke_run.project))
        response = case.call_and_validate(app=big, headers=AUTH, checks=CHECKS)
    assert response.status_code == 200
    CASES["POST /predict (100 real records)"] += 1
