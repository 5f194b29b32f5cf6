"""The malformed-file corpus (tests/malformed.py) through every command that reads images.

Zero tracebacks, every input accounted for in the output, and the good
photos among the bad ones still answered. The default run uses a few
truncations per format; the slow-marked run uses many more.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import malformed
import pytest
from helpers import clean, facematch_cli

DATA = Path(__file__).parent / "data"


def corpus(tmp_path: Path, cuts: int) -> tuple[Path, list[Path]]:
    folder = tmp_path / "corpus"
    files = malformed.build(folder, DATA / "obama2.jpg", cuts=cuts)
    shutil.copy(DATA / "obama2.jpg", folder / "good.jpg")
    shutil.copy(DATA / "two_people.jpg", folder / "good-two.jpg")
    return folder, sorted([*files, folder / "good.jpg", folder / "good-two.jpg"])


def check_match_and_detect(
    known_files: Path, folder: Path, files: list[Path], *, one_process: bool = False
) -> None:
    expected = {str(f) for f in files}
    runs: list[list[object]] = [
        [known_files, folder, "--format", "json"],
        ["detect", folder, "--format", "json"],
    ]
    if one_process:  # the same answers without the cache or worker processes
        runs.append([known_files, folder, "--format", "json", "--no-cache", "-j", "1"])
    for args in runs:
        done = facematch_cli(*args)
        clean(done)
        results = {item["path"]: item for item in json.loads(done.stdout)}
        if args[0] == "detect":  # detect reads photos only
            assert set(results) == {p for p in expected if not p.endswith(".mp4")}
        else:
            assert set(results) == expected
        for item in results.values():
            assert item["status"] in ("ok", "no_faces", "error")
            if item["status"] == "error":
                assert item["error"] and "\n" not in item["error"]
                assert f"{item['path']}: " in done.stderr
        assert results[str(folder / "good.jpg")]["status"] == "ok"
        assert len(results[str(folder / "good-two.jpg")]["faces"]) == 2
        for fmt in malformed.FORMATS.values():
            assert results[str(folder / f"misnamed-{fmt.lower()}.bmp")]["status"] == "ok"
        if args[0] != "detect":
            names = [face["name"] for face in results[str(folder / "good.jpg")]["faces"]]
            assert names == ["Barack Obama"]


def check_evaluate(tmp_path: Path, folder: Path) -> None:
    people = tmp_path / "people"
    shutil.copytree(folder, people / "obama")
    (people / "biden").mkdir()
    shutil.copy(DATA / "biden.jpg", people / "biden" / "biden.jpg")
    shutil.copy(DATA / "obama.jpg", people / "obama" / "obama.jpg")
    done = facematch_cli("evaluate", people, "--format", "json")
    clean(done)
    report = json.loads(done.stdout)
    accounted = len(report["unreadable"]) + len(report["no_face"])
    assert report["images"] >= accounted
    for item in report["unreadable"]:
        assert f"{item['path']}: " in done.stderr


def test_malformed_corpus(known_files: Path, tmp_path: Path) -> None:
    folder, files = corpus(tmp_path, cuts=4)
    check_match_and_detect(known_files, folder, files)
    check_evaluate(tmp_path, folder)


@pytest.mark.slow
def test_malformed_corpus_many_cuts(known_files: Path, tmp_path: Path) -> None:
    folder, files = corpus(tmp_path, cuts=24)
    check_match_and_detect(known_files, folder, files, one_process=True)
    check_evaluate(tmp_path, folder)
