"""The shipped OpenAPI document is valid and describes exactly the handlers that exist."""

import re
import subprocess
import sys

import pytest
import tornado.web

from tests.contract import RUN_JSON_KEYS
from wasm_sandbox.jupyter import server
from wasm_sandbox.jupyter.server_request import FIELDS, LIMIT_NAMES

PREFIX = "/wasm-sandbox/api/"
DOC = server.openapi_document()


def test_the_document_is_valid_openapi_3():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(DOC)
    assert DOC["openapi"].startswith("3.")


def implemented(handler: type) -> set[str]:
    return {
        m
        for m in ("get", "post", "put", "patch", "delete")
        if getattr(handler, m) is not getattr(tornado.web.RequestHandler, m)
    }


def test_paths_and_methods_match_the_routes():
    routes = {
        PREFIX + re.sub(r"\(\[\^/\]\+\)", "{id}", path): implemented(handler)
        for path, handler in server.ROUTES
    }
    documented = {path: set(ops) - {"parameters"} for path, ops in DOC["paths"].items()}
    assert documented == routes


def test_every_operation_documents_refusals_and_an_id():
    ids = []
    for ops in DOC["paths"].values():
        for op in ops.values():
            ids.append(op["operationId"])
            assert {"403", "503"} <= set(op["responses"])
    assert len(ids) == len(set(ids))


def test_the_run_request_and_answer_match_the_code_and_the_cli_contract():
    schemas = DOC["components"]["schemas"]
    assert set(schemas["RunRequest"]["properties"]) == set(FIELDS)
    assert set(schemas["Limits"]["properties"]) == set(LIMIT_NAMES)
    assert set(schemas["Execution"]["required"]) == RUN_JSON_KEYS
    from wasm_sandbox.outcome import STATUSES

    assert schemas["Execution"]["properties"]["status"]["enum"] == list(STATUSES)


def test_the_core_imports_no_jupyter_server():
    code = (
        "import sys, wasm_sandbox.sandbox, wasm_sandbox.cli, wasm_sandbox.ledger; "
        "bad = [m for m in ('tornado', 'jupyter_server') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
