"""`python -m bench same_results`: the demo world's published documents, to compare two codes.

A refactoring must not move the published numbers. This runs the demo world (the
settings' simulation size and seed) at a fixed as-of date in a fresh home, with the CLI
the newcomer uses (`bbx simulate`, then `bbx run nightly`), and writes every published
score and price document, sorted by customer, to a JSON file:

    python -m bench same_results --out=before.json          # on the old code
    python -m bench same_results --out=after.json           # on the new code
    python -m bench same_results --compare=before.json,after.json

`--compare` prints each numeric field's largest absolute difference and every
non-numeric field that differs, and exits non-zero when a number differs by more
than `--tolerance` (1e-9) or anything else differs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

AS_OF = "2026-11-30"
# What a night publishes for the app, minus bookkeeping that differs on every run
# (run ids, timestamps, model version numbers are compared; instants are not).
VOLATILE = {"_id", "scoredAt", "runId", "publishedAt", "updatedAt", "createdAt"}


def _option(argv: list[str], name: str, default: str | None = None) -> str | None:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


def _cli_entry_point() -> tuple[str, str]:
    """The `bbx` script's module and object, read from pyproject.toml: the code under test
    (a worktree on PYTHONPATH), not whatever the venv's installed script points at."""
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    module, _, attribute = project["project"]["scripts"]["bbx"].partition(":")
    return module, attribute


def _bbx(home: Path, *args: str) -> None:
    module, attribute = _cli_entry_point()
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    env.pop("MONGODB_URI", None)
    code = f"import sys; sys.argv[0] = 'bbx'; from {module} import {attribute} as app; app()"
    subprocess.run([sys.executable, "-c", code, "--home", str(home), *args], check=True, env=env)


def _flatten(document: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(document, dict):
        out: dict[str, Any] = {}
        for key, value in document.items():
            if key in VOLATILE:
                continue
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(document, list):
        out = {}
        for i, value in enumerate(document):
            out.update(_flatten(value, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): document}


def dump(home: Path, out: Path) -> int:
    from bbx.lake import SCORES_COLLECTION
    from bbx.mongo import connect, mongo_uri
    from bbx.settings import load_settings

    settings = load_settings(home=str(home))
    with mongo_uri(settings) as uri:
        client = connect(uri, settings)
        try:
            db = client[settings.mongo.database]
            rows = {str(d["userId"]): _flatten(d) for d in db[SCORES_COLLECTION].find({})}
        finally:
            client.close()
    out.write_text(json.dumps(rows, sort_keys=True, default=str))
    return len(rows)


def compare(before: Path, after: Path, tolerance: float) -> bool:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    ok = True
    if set(a) != set(b):
        only_a, only_b = len(set(a) - set(b)), len(set(b) - set(a))
        print(f"customers differ: {only_a} only before, {only_b} only after")
        ok = False
    largest: dict[str, float] = {}
    other: dict[str, int] = {}
    for user in sorted(set(a) & set(b)):
        for field in sorted(set(a[user]) | set(b[user])):
            x, y = a[user].get(field), b[user].get(field)
            if isinstance(x, int | float) and isinstance(y, int | float) \
                    and not isinstance(x, bool) and not isinstance(y, bool):
                gap = 0.0 if (math.isnan(x) and math.isnan(y)) else abs(float(x) - float(y))
                largest[field] = max(largest.get(field, 0.0), gap)
            elif x != y:
                other[field] = other.get(field, 0) + 1
    print(f"{len(set(a) & set(b)):,} customers compared")
    for field, gap in sorted(largest.items()):
        flag = "" if gap <= tolerance else "   <-- above tolerance"
        print(f"  {field:40s} max |before - after| = {gap:.3g}{flag}")
        ok &= gap <= tolerance
    for field, count in sorted(other.items()):
        print(f"  {field:40s} differs for {count:,} customers")
        ok = False
    return ok


def main(argv: list[str]) -> None:
    pair = _option(argv, "compare")
    if pair:
        before, after = (Path(p) for p in pair.split(","))
        tolerance = float(_option(argv, "tolerance", "1e-9"))
        sys.exit(0 if compare(before, after, tolerance) else 1)
    out = Path(_option(argv, "out", "same_results.json")).resolve()
    as_of = _option(argv, "as-of", AS_OF)
    with tempfile.TemporaryDirectory(prefix="bbx-same-results-") as tmp:
        home = Path(tmp) / "home"
        _bbx(home, "simulate", "--end", as_of)
        _bbx(home, "run", "nightly", "--as-of", as_of)
        n = dump(home, out)
    print(f"{n:,} published customers written to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
