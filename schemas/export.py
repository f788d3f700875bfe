"""Write the JSON Schema of every contract to schemas/json/ (``make schemas``).

Producers in other languages validate against these files; tests fail when a file drifts
from its model, so the files and the models cannot disagree on main.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.alert import Alert
from schemas.report import ImportReport

JSON_DIR = Path(__file__).parent / "json"

CONTRACTS: dict[str, type[BaseModel]] = {
    "import-report.v1.json": ImportReport,
    "alert.v1.json": Alert,
}


def schema_text(model: type[BaseModel]) -> str:
    schema: dict[str, Any] = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, model in CONTRACTS.items():
        (JSON_DIR / name).write_text(schema_text(model), encoding="utf-8")
        print(f"wrote schemas/json/{name}")


if __name__ == "__main__":
    main()
