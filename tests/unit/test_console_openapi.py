"""The console's API description is valid OpenAPI and names every JSON endpoint the console serves."""

from __future__ import annotations

from openapi_spec_validator import validate
from starlette.routing import Route

from services.console import api


def test_the_description_is_valid_openapi() -> None:
    validate(api.openapi())  # type: ignore[arg-type]


def test_every_json_endpoint_is_described() -> None:
    spec = api.openapi()["paths"]
    served = set()
    for route in api.routes(None):  # type: ignore[arg-type]
        assert isinstance(route, Route)
        if route.path == "/openapi.json":
            continue
        for method in route.methods or ():
            if method == "HEAD":
                continue
            path = "/api" + route.path.replace("{case_id:int}", "{case_id}")
            if "{action}" in path:
                served |= {(path.replace("{action}", a), method.lower()) for a in api.ACTIONS}
            else:
                served.add((path, method.lower()))
    described = {(path, method) for path, ops in spec.items() for method in ops}
    assert served == described
