"""Write ``tests/data/golden-alerts.jsonl.gz`` again from the code as it is now (see tests/golden.py).

``.venv/bin/python -m tests.golden_update``: only after a deliberate change to what the rules
stage says; review the difference (``zdiff`` of the old and new file) before committing it.
"""

from __future__ import annotations

from tests import golden


def main() -> None:
    n = golden.write()
    print(f"{n} reports written to {golden.GOLDEN.relative_to(golden.ROOT)}")


if __name__ == "__main__":
    main()
