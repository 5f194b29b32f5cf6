"""Golden outputs: every command on the repo's real photos, recorded byte for byte.

``python tests/golden/golden.py record [CASE...]`` runs every case below in a fresh
work folder and writes what each printed (stdout, stderr, exit status) and a digest of
every file it wrote to ``tests/golden/expected.json`` (only the named cases' records are
replaced when some are named; all run, since later cases read what earlier ones wrote).
``python tests/golden/golden.py check [CASE...]`` runs them again and prints every
difference (exit 1 if any; numbers within ``NUMBER_TOLERANCE``, see there);
``tests/test_golden.py`` runs the check. Record again only
for a change of behaviour that is meant, and say so in the commit.

Each case runs ``python -m facematch`` as a child process with ``--jobs 1``, a private
cache and library, and relative paths, so the output does not depend on the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parent.parent
DATA = REPO / "tests" / "data"
EXPECTED = HERE / "expected.json"

#: Figures that differ from run to run: timings, versions, absolute work folders.
VOLATILE = [
    (re.compile(r"\d+(\.\d+)? ?(s|ms|CPU-s)\b"), "<time>"),
    (
        re.compile(
            r'"(seconds|elapsed|wall_seconds|cpu_seconds|created|modified|mtime)": [^,}\n]+'
        ),
        r'"\1": <volatile>',
    ),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<timestamp>"),
]

M = ["--jobs", "1", "-q"]

#: name -> argument list; each runs in order in one work folder (later cases may read
#: what earlier ones wrote, e.g. the library).
CASES: list[tuple[str, list[str]]] = [
    ("match-compat", ["known", "unknown", *M]),
    ("match-distance", ["known", "unknown", "--show-distance", *M]),
    ("match-all", ["known", "unknown", "--all-matches", "--show-distance", *M]),
    ("match-csv", ["known", "unknown", "--format", "csv", *M]),
    ("match-json", ["known", "unknown", "--format", "json", *M]),
    ("match-jsonl", ["known", "unknown", "--format", "jsonl", "-t", "0.5", *M]),
    ("match-bad", ["known", "bad", "--format", "csv", *M]),
    ("match-annotate", ["known", "unknown", "--annotate", "ann", "--report", "rep.html", *M]),
    ("match-video", ["vknown", "video", "--format", "json", *M]),
    ("match-video-frames", ["vknown", "video", "--per-frame", "--format", "csv", *M]),
    ("detect", ["detect", "unknown", *M]),
    ("detect-json", ["detect", "unknown", "--format", "json", *M]),
    ("index", ["index", "unknown", "people", "--library", "lib.sqlite3", *M]),
    ("library-info", ["library", "info", "--library", "lib.sqlite3"]),
    ("library-export", ["library", "export", "--library", "lib.sqlite3"]),
    ("search", ["search", "people/obama/obama.jpg", "--library", "lib.sqlite3", *M]),
    (
        "search-json",
        ["search", "people/obama", "--library", "lib.sqlite3", "--format", "json", "-k", "3", *M],
    ),
    ("match-library", ["known", "--library", "lib.sqlite3", "--format", "csv", *M]),
    (
        "cluster",
        ["cluster", "people", "unknown", "--library", "lib.sqlite3", "--format", "csv", *M],
    ),
    ("cluster-name", ["cluster", "name", "person_1", "Barack Obama", "--library", "lib.sqlite3"]),
    (
        "cluster-again",
        [
            "cluster",
            "people",
            "unknown",
            "--library",
            "lib.sqlite3",
            "--format",
            "json",
            "--out",
            "groups",
            *M,
        ],
    ),
    ("redact", ["redact", "unknown", "--known", "known", "--out", "red", *M]),
    (
        "redact-everyone",
        ["redact", "--everyone", "unknown", "--out", "red2", "--format", "csv", *M],
    ),
    (
        "cloak",
        [
            "cloak",
            "people/obama/obama_small.jpg",
            "--level",
            "subtle",
            "--out",
            "cl",
            "--format",
            "csv",
            *M,
        ],
    ),
    (
        "cloak-check",
        [
            "cloak",
            "--check",
            "people/obama/obama_small.jpg",
            "cl/obama_small.jpg",
            "--format",
            "json",
            "-q",
        ],
    ),
    (
        "cloak-check-other",
        ["cloak", "--check", "people/obama/obama.jpg", "people/obama/obama2.jpg", "-q"],
    ),
    ("evaluate", ["evaluate", "people", "--format", "json", *M[:-1]]),
]


def workspace(root: Path) -> None:
    """Lay out the cases' inputs (copies of tests/data and examples) under root."""
    shutil.copytree(REPO / "examples" / "known", root / "known")
    shutil.copytree(REPO / "examples" / "unknown", root / "unknown")
    bad = root / "bad"
    bad.mkdir()
    shutil.copy(DATA / "obama2.jpg", bad / "good.jpg")
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.png").write_text("not an image")
    (bad / "truncated.jpg").write_bytes((DATA / "biden.jpg").read_bytes()[:3000])
    people = root / "people"
    for person, files in {
        "obama": ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_small.jpg"],
        "biden": ["biden.jpg"],
        "lin": ["lin-manuel-miranda.jpg"],
        "alex": ["alex-lacamoire.png"],
    }.items():
        (people / person).mkdir(parents=True)
        for name in files:
            shutil.copy(DATA / name, people / person / name)
    vknown = root / "vknown"
    vknown.mkdir()
    shutil.copy(DATA / "lin-manuel-miranda.jpg", vknown / "Lin-Manuel Miranda.jpg")
    shutil.copy(DATA / "alex-lacamoire.png", vknown / "Alex Lacamoire.png")
    (root / "video").mkdir()
    shutil.copy(DATA / "hamilton-4s.mp4", root / "video" / "hamilton.mp4")


def scrub(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def digest_tree(root: Path, before: set[Path]) -> dict[str, str]:
    """sha256 of every file a case wrote (HTML and JSON scrubbed of volatile figures)."""
    out: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p not in before):
        if (
            path.suffix in {".sqlite3", ".npy"}
            or "-journal" in path.name
            or path.name.endswith(("-wal", "-shm"))
        ):
            continue
        data = path.read_bytes()
        if path.suffix in {".html", ".json", ".jsonl", ".csv", ".txt"}:
            data = scrub(data.decode("utf-8", "replace")).encode()
        out[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


def run_cases(names: Iterable[str] | None = None) -> dict[str, dict[str, object]]:
    wanted = set(names) if names else None
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="facematch-golden-") as tmp:
        root = Path(tmp) / "work"
        root.mkdir()
        workspace(root)
        env = {
            **os.environ,
            "XDG_CACHE_HOME": str(Path(tmp) / "cache"),
            "XDG_DATA_HOME": str(Path(tmp) / "data"),
            "COLUMNS": "100",
            "PYTHONHASHSEED": "0",
        }
        env.pop("FACEMATCH_LIBRARY", None)
        for name, args in CASES:  # every case: later ones read what earlier ones wrote
            before = {p for p in root.rglob("*") if p.is_file()}
            done = subprocess.run(
                [sys.executable, "-m", "facematch", *args],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            results[name] = {
                "args": args,
                "exit": done.returncode,
                "stdout": scrub(done.stdout.replace(tmp, "<tmp>")),
                "stderr": scrub(done.stderr.replace(tmp, "<tmp>")),
                "files": digest_tree(root, before),
            }
    return {k: v for k, v in results.items() if wanted is None or k in wanted}


#: Numbers in what a command prints are compared within this (absolute, or relative
#: to the larger): CPUs with other vector units (AVX-512 or not) give dlib's and
#: ONNX Runtime's descriptors different last bits, about 1e-7 in a distance, which
#: can turn the sixth decimal printed. Everything else is compared byte for byte.
NUMBER_TOLERANCE = 2e-6

#: The cloak's cases: a copy is the end of a hundred gradient steps, which carry
#: those last bits into whole grey levels. Their numbers are compared within this,
#: and the copies they write by name, not by their bytes (the cloak's own tests
#: measure what the copies do); what they print otherwise is compared as above.
LOOSE_CASES = {"cloak": 0.03, "cloak-check": 0.03}

_NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+(?:[eE][-+]?\d+)")


def same_text(want: str, got: str, tolerance: float) -> bool:
    """The same text, numbers with a fraction or exponent within ``tolerance``."""
    if want == got:
        return True
    if _NUMBER.split(want) != _NUMBER.split(got):
        return False
    return all(
        abs(float(a) - float(b)) <= tolerance * max(1.0, abs(float(a)), abs(float(b)))
        for a, b in zip(_NUMBER.findall(want), _NUMBER.findall(got), strict=True)
    )


def differences(
    expected: dict[str, dict[str, object]], actual: dict[str, dict[str, object]]
) -> list[str]:
    lines: list[str] = []
    for name, want in expected.items():
        got = actual.get(name)
        if got is None:
            lines.append(f"{name}: not run")
            continue
        tolerance = LOOSE_CASES.get(name, NUMBER_TOLERANCE)
        for key in ("exit", "stdout", "stderr", "files"):
            a, b = want[key], got[key]
            if isinstance(a, str) and isinstance(b, str):
                same = same_text(a, b, tolerance)
            elif key == "files" and name in LOOSE_CASES:
                same = isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
            else:
                same = a == b
            if not same:
                lines.append(f"{name}: {key} differs\n  expected: {a!r}\n  actual:   {b!r}")
    return lines


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"record", "check"}:
        print("usage: golden.py record|check [CASE...]", file=sys.stderr)
        return 2
    names = argv[1:] or None
    actual = run_cases(names)
    if argv[0] == "record":
        if names and EXPECTED.exists():  # re-record only the named cases
            actual = {**json.loads(EXPECTED.read_text()), **actual}
        EXPECTED.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(actual)} cases in {EXPECTED}")
        return 0
    expected = json.loads(EXPECTED.read_text())
    if names:
        expected = {k: v for k, v in expected.items() if k in set(names)}
    found = differences(expected, actual)
    for line in found:
        print(line)
    print(
        f"{len(expected) - len({f.split(':')[0] for f in found})} of {len(expected)} cases "
        "identical"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
