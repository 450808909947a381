"""`python -m bench [NAME ...]`: run benchmarks and print their figures.

Each benchmark is a module `bench/<name>.py` with `main(argv: list[str]) -> None`.
With no name, every registered benchmark runs with its defaults.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> None:
    names = [a for a in argv if not a.startswith("-")] or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
    options = [a for a in argv if a.startswith("-")]
    for name in names:
        print(f"== bench {name}", flush=True)
        importlib.import_module(f"bench.{name}").main(options)


if __name__ == "__main__":
    main(sys.argv[1:])
