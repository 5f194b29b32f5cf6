"""Reliability, round two (issue 26): outputs that never damage what is there.

Each test is the regression test of one defect: ``cluster --out`` deleting the
user's files, copies written into the known folder, half-written files on a
full disk, one-line errors for every full output, the private temp folder,
and names ``cluster name`` must refuse. They run the real command in real
processes on real photos; a full disk is a small tmpfs (mounted when the
tests run as root, skipped otherwise) or, for the writer itself, a write that
fails half-way.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import facematch_cli, no_traceback

from facematch.cli import EXIT_FATAL, EXIT_USAGE

DATA = Path(__file__).parent / "data"
TBBT = DATA / "people" / "tbbt"


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder``, hidden ones too (a temporary file left over shows)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


# --- a full disk ----------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 256 KB tmpfs, full: empty files and folders can be made, no more."""
    mount = tmp_path / "small"
    mount.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        room = os.statvfs(mount)
        (mount / "filler").write_bytes(bytes(room.f_bavail * room.f_frsize))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def full_disk_error(done: subprocess.CompletedProcess[str], written: Path) -> None:
    """One line naming the cause and the file, exit 1, and no traceback."""
    no_traceback(done)
    assert done.returncode == EXIT_FATAL, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last == f"facematch: error: no space left on device writing {written}", done.stderr


def test_a_write_that_fails_half_way_leaves_nothing_and_names_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facematch import files
    from facematch.errors import OutputError
    from facematch.output.pictures import write_atomically

    target = tmp_path / "out" / "copy.jpg"
    write_atomically(target, b"old")
    real_fdopen = os.fdopen

    class HalfWay(io.BufferedWriter):
        def write(self, data: Any) -> int:
            super().write(bytes(data)[: len(data) // 2])
            super().flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(descriptor: int, mode: str, *args: Any, **kwargs: Any) -> Any:
        return HalfWay(real_fdopen(descriptor, mode, buffering=0))

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    with pytest.raises(OutputError) as raised:
        write_atomically(target, b"x" * 100_000)
    assert str(raised.value) == f"no space left on device writing {target}"
    assert target.read_bytes() == b"old"
    assert files_under(tmp_path / "out") == ["copy.jpg"]


@pytest.mark.parametrize("command", ["annotate", pytest.param("redact", marks=pytest.mark.slow)])
def test_copies_on_a_full_disk_are_one_line_and_leave_nothing(
    full_disk: Path, known_files: Path, tmp_path: Path, command: str
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DATA / "obama2.jpg", photos / "a.jpg")
    out = full_disk / "out"
    if command == "annotate":
        done = facematch_cli(known_files, photos, "--annotate", out, "-j1")
    else:
        done = facematch_cli("redact", photos, "--known", known_files, "--out", out, "-j1")
    full_disk_error(done, out / "a.jpg")
    assert files_under(out) == []


@pytest.mark.slow
def test_cloak_on_a_full_disk_names_the_disk_not_the_photo(full_disk: Path, tmp_path: Path) -> None:
    pytest.importorskip("jax")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DATA / "obama_small.jpg", photos / "a.jpg")
    out = full_disk / "out"
    done = facematch_cli("cloak", photos, "--out", out, "--level", "subtle", "-j1")
    full_disk_error(done, out / "a.jpg")
    assert "decode" not in done.stderr and "truncated" not in done.stderr
    assert files_under(out) == []


def test_cluster_out_on_a_full_disk_is_one_line(full_disk: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(TBBT / "amy", photos / "amy")
    out = full_disk / "out"
    done = facematch_cli("cluster", photos, "--library", tmp_path / "l.sqlite3", "--out", out)
    no_traceback(done)
    assert done.returncode == EXIT_FATAL, done.stderr
    assert done.stderr.splitlines()[-1].startswith("facematch: error: no space left on device")
    assert not [name for name in files_under(out) if name.endswith(".tmp")]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_csv_and_json_to_a_full_disk_are_one_line(known_files: Path, fmt: str) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "facematch", known_files, DATA / "obama2.jpg", "--format", fmt],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=240,
        )  # fmt: skip
    assert done.returncode == EXIT_FATAL
    assert done.stderr == "facematch: error: cannot write the output: No space left on device\n"


def test_library_export_to_a_full_disk_leaves_no_half_file(full_disk: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(TBBT / "amy", photos)
    library = tmp_path / "l.sqlite3"
    assert facematch_cli("index", photos, "--library", library, "-q").returncode == 0
    out = full_disk / "faces.jsonl"
    done = facematch_cli("library", "export", "--library", library, "--output", out)
    full_disk_error(done, out)
    assert files_under(full_disk) == ["filler"]
    prefix = full_disk / "faces"
    export = ("library", "export", "--library", library)
    done = facematch_cli(*export, "--format", "npy", "--output", prefix)
    full_disk_error(done, full_disk / "faces.npy")
    assert files_under(full_disk) == ["filler"]


# --- 5: cluster --out removes only what it wrote ---------------------------------------


def test_cluster_out_keeps_the_user_s_files(tmp_path: Path) -> None:
    photos, out, library = tmp_path / "photos", tmp_path / "out", tmp_path / "l.sqlite3"
    for who in ("amy", "raj"):
        shutil.copytree(TBBT / who, photos / who)

    def cluster() -> subprocess.CompletedProcess[str]:
        done = facematch_cli("cluster", photos, "--library", library, "--out", out, "-j1")
        assert done.returncode == 0, done.stderr
        return done

    def crops(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.name.endswith("__face0.jpg"))

    cluster()
    raj = next(d for d in out.iterdir() if d.is_dir() and crops(d)[0].startswith("raj__"))
    (raj / "notes.txt").write_text("x\n")
    (raj / "mine").mkdir()
    shutil.copy(DATA / "obama.jpg", raj / "mine" / "obama.jpg")
    done = cluster()
    assert "warning" not in done.stderr
    assert (raj / "notes.txt").read_text() == "x\n"
    assert (raj / "mine" / "obama.jpg").read_bytes() == (DATA / "obama.jpg").read_bytes()
    assert crops(raj) == [f"raj__raj{i}.png__face0.jpg" for i in range(1, 6)]
    # Named, the person's crops move to a folder of that name; the user's files stay.
    named = facematch_cli("cluster", "name", raj.name, "Raj", "--library", library)
    assert named.returncode == 0, named.stderr
    done = cluster()
    assert (
        f"facematch: warning: {raj}: kept, as it holds files facematch did not write "
        f"(mine, notes.txt); its crops are now in {out / 'Raj'}\n"
    ) in done.stderr
    assert sorted(p.name for p in raj.iterdir()) == ["mine", "notes.txt"]
    assert (raj / "mine" / "obama.jpg").is_file()
    assert crops(out / "Raj") == [f"raj__raj{i}.png__face0.jpg" for i in range(1, 6)]


# --- 6: no copies inside KNOWN or an input folder --------------------------------------


# Each command line (run in a folder holding known/ and u/) and its message.
INSIDE_INPUTS = {
    "redact-out-known": (
        "redact u --known known --out known",
        "--out known is the input folder known",
    ),
    "redact-out-input": ("redact u --out u/x", "--out u/x is inside the input folder u"),
    "annotate-known": ("known u --annotate known", "--annotate known is the input folder known"),
    "annotate-in-input": ("known u --annotate u/x", "--annotate u/x is inside the input folder u"),
    "detect-annotate": ("detect u --annotate u/x", "--annotate u/x is inside the input folder u"),
    "report-assets": (
        "known u --report r.html --report-assets known/crops",
        "--report-assets known/crops is inside the input folder known",
    ),
    "report-page": (
        "known u --report u/r.html",
        "--report u/r.html: its crops folder u/r_files is inside the input folder u",
    ),
    "cluster-out": (
        "cluster u --library l.sqlite3 --out u/people",
        "--out u/people is inside the input folder u",
    ),
    "cluster-out-known": (
        "cluster u --library l.sqlite3 --known known --out known/people",
        "--out known/people is inside the input folder known",
    ),
    "cloak-out": ("cloak u --out u/cloaked", "--out u/cloaked is inside the input folder u"),
}


@pytest.mark.parametrize(("args", "message"), INSIDE_INPUTS.values(), ids=INSIDE_INPUTS.keys())
def test_no_copies_are_written_into_known_or_an_input_folder(
    tmp_path: Path, known_files: Path, args: str, message: str
) -> None:
    if args.startswith("cloak"):
        pytest.importorskip("jax")
    u = tmp_path / "u"
    u.mkdir()
    shutil.copy(DATA / "obama2.jpg", u / "a.jpg")
    before = files_under(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "facematch", *args.split()],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr == f"facematch: error: {message}; choose a folder outside the inputs\n"
    assert files_under(tmp_path) == before


def test_an_output_folder_beside_an_input_folder_is_fine(tmp_path: Path) -> None:
    from facematch.errors import UsageError
    from facematch.output.pictures import refuse_output_in_inputs

    (tmp_path / "known").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "known")
    refuse_output_in_inputs("--out", tmp_path / "known2", [str(tmp_path / "known")])
    refuse_output_in_inputs("--out", tmp_path, [str(tmp_path / "known")])
    with pytest.raises(UsageError, match=r"^--out .*/link/x is inside the input folder .*/known;"):
        refuse_output_in_inputs("--out", tmp_path / "link" / "x", [str(tmp_path / "known")])


# --- 8d: names that would collide with person_N and unclustered ------------------------


def test_cluster_name_refuses_names_that_collide(tmp_path: Path) -> None:
    photos, library = tmp_path / "photos", tmp_path / "l.sqlite3"
    shutil.copytree(TBBT / "amy", photos / "amy")
    made = facematch_cli("cluster", photos, "--library", library, "-q", "-j1")
    assert made.returncode == 0, made.stderr
    refused = {
        "": "a person's name cannot be empty",
        "  ": "a person's name cannot be empty",
        "unclustered": "'unclustered' cannot be a name: unclustered holds the faces in no group",
        "Unclustered.": "'Unclustered.' cannot be a name: unclustered holds the faces in no group",
        "person_2": "'person_2' cannot be a name: person_N is for people without one",
        "PERSON_1": "'PERSON_1' cannot be a name: person_N is for people without one",
    }
    for name, message in refused.items():
        done = facematch_cli("cluster", "name", "person_1", name, "--library", library)
        assert done.returncode == EXIT_USAGE, (name, done.stderr)
        assert done.stderr == f"facematch: error: {message}\n"
    rows = facematch_cli("cluster", photos, "--library", library, "--format", "json", "-q")
    assert {row["name"] for row in json.loads(rows.stdout)} == {None}
    named = facematch_cli("cluster", "name", "person_1", "person_1 Amy", "--library", library)
    assert named.returncode == 0, named.stderr


# --- 8c: a foreign $TMPDIR/facematch-<uid> ---------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX owners and modes")
@pytest.mark.parametrize("foreign", ["mode-0777", "owned-by-nobody"])
@pytest.mark.parametrize("cache", ["cache", "no-cache"])
def test_a_foreign_temp_folder_warns_once_and_leaves_nothing(
    tmp_path: Path, known_files: Path, foreign: str, cache: str
) -> None:
    temp = tmp_path / "tmp"
    theirs = temp / f"facematch-{os.geteuid()}"
    theirs.mkdir(parents=True)
    if foreign == "mode-0777":
        theirs.chmod(0o777)
    elif os.geteuid() == 0:
        os.chown(theirs, 65534, 65534)
        theirs.chmod(0o700)
    else:
        pytest.skip("giving a folder to another user needs root")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        shutil.copy(DATA / "obama2.jpg", photos / f"{i}.jpg")
    env = {**os.environ, "TMPDIR": str(temp), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("FACEMATCH_PRIVATE_TEMP", None)  # files.TEMP_FOLDER_VARIABLE
    extra = ["--no-cache"] if cache == "no-cache" else []
    done = facematch_cli(known_files, photos, "-j2", *extra, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"facematch: warning: {theirs} is not a private folder of this user; not using it\n"
    )
    assert os.listdir(temp) == [theirs.name]
