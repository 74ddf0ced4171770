"""The contract's names are the ones the worker registers, and the services stay apart."""

import ast
from pathlib import Path

from dbos._dbos import _get_or_create_dbos_registry

from services import contract
from services.worker import workflows

SERVICES = Path(__file__).resolve().parents[2] / "services"


def test_worker_registers_the_workflow_under_the_contract_name() -> None:
    registry = _get_or_create_dbos_registry()
    assert registry.workflow_info_map[contract.WORKFLOW_NAME] is not None
    assert workflows.workflow.__name__ == "workflow"


def _imported_modules(package: Path) -> set[str]:
    modules: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module)
    return modules


def test_api_and_worker_share_only_the_contract() -> None:
    api_imports = _imported_modules(SERVICES / "api")
    worker_imports = _imported_modules(SERVICES / "worker")
    assert not any(m.startswith("services.worker") for m in api_imports)
    assert not any(m.startswith("services.api") for m in worker_imports)


def test_api_never_launches_dbos() -> None:
    # DBOS.launch() in the API would register its version as latest and starve the workers.
    for path in (SERVICES / "api").rglob("*.py"):
        assert "launch(" not in path.read_text(), path


def test_openapi_documents_every_route_and_method() -> None:
    from services.api.openapi import openapi_document
    from services.api.routes import routes

    documented = {
        (path, method.upper())
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    }
    served = {(r.path, m) for r in routes for m in set(r.methods or ()) - {"HEAD"}}
    assert documented == served
