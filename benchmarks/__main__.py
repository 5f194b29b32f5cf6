"""List the benchmarks by kind, or run one: ``python -m benchmarks [NAME [ARGS...]]``.

NAME is a benchmark's module name (``bench_video``) or ``KIND.NAME``
(``speed.bench_video``); the arguments after it go to the benchmark, which runs
as ``python -m benchmarks.KIND.NAME ARGS...`` would run it. The listing reads
the docstrings without importing anything, so it needs no optional package.
"""

from __future__ import annotations

import ast
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("speed", "accuracy", "scale")  # the listing's order; other kinds follow, sorted


def first_line(path: Path) -> str:
    """The first line of a module's or package's docstring, read without importing it."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    return doc.strip().splitlines()[0] if doc else ""


def kinds() -> list[str]:
    """The kind folders: packages directly under benchmarks/."""
    found = {p.parent.name for p in HERE.glob("*/__init__.py")}
    return [k for k in ORDER if k in found] + sorted(found - set(ORDER))


def catalogue() -> dict[str, dict[str, str]]:
    """{kind: {benchmark name: first line of its docstring}}."""
    return {
        kind: {
            path.stem: first_line(path)
            for path in sorted((HERE / kind).glob("*.py"))
            if not path.stem.startswith("_")
        }
        for kind in kinds()
    }


def resolve(name: str) -> list[str]:
    """The modules ``name`` can mean: ``NAME``, ``KIND.NAME``, ``KIND/NAME.py`` or the
    module's full name."""
    name = name.removeprefix("benchmarks.").removesuffix(".py").replace("/", ".")
    kind, _, stem = name.rpartition(".")
    return [
        f"benchmarks.{k}.{n}"
        for k, names in catalogue().items()
        for n in names
        if n == stem and kind in ("", k)
    ]


def listing() -> str:
    table = catalogue()
    width = max((len(n) for names in table.values() for n in names), default=0)
    lines = [
        "Benchmarks, by kind. From the repository root: python -m benchmarks NAME [ARGS...]",
        "runs one (NAME --help for its options), as python -m benchmarks.KIND.NAME does.",
    ]
    for kind, names in table.items():
        lines += ["", f"{kind}: {first_line(HERE / kind / '__init__.py')}"]
        lines += [f"  {name:<{width}}  {summary}" for name, summary in names.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(listing())
        return 0
    modules = resolve(args[0])
    if len(modules) != 1:
        why = "is ambiguous: give KIND.NAME" if modules else "is not a benchmark"
        print(f"python -m benchmarks: {args[0]!r} {why}\n\n{listing()}", file=sys.stderr)
        return 2
    sys.argv = [args[0], *args[1:]]  # runpy puts the module's file in sys.argv[0]
    runpy.run_module(modules[0], run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
