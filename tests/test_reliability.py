"""Hostile inputs and hostile conditions: every input accounted for, no hang, no crash.

Each test here is the regression test of one defect found by trying facematch
as a hostile user would (issue 15). They run the real command in real
processes on real photos; only the pool's own crash handling is exercised with
a stand-in work function (tests/crashy.py), since what the pool does when a
worker dies does not depend on faces.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import crashy
import numpy as np
import pytest
from helpers import facematch_cli, no_traceback
from PIL import Image

import facematch
from facematch.cli import EXIT_OUTPUT_CLOSED, EXIT_PARTIAL, EXIT_TERMINATED, EXIT_USAGE
from facematch.run.runners import ProcessPool, resolve_jobs
from facematch.run.tasks import failure_message

LINUX = sys.platform.startswith("linux")


def rows(stdout: str) -> dict[str, dict[str, object]]:
    return {item["path"]: item for item in json.loads(stdout)}


@pytest.fixture
def known(known_files: Path) -> Path:
    return known_files


@pytest.fixture
def unknown_one(tmp_path: Path, data: Path) -> Path:
    folder = tmp_path / "u"
    folder.mkdir()
    shutil.copy(data / "obama2.jpg", folder / "a.jpg")
    return folder


# 1 and 10: images a few pixels wide crashed dlib's CNN fallback; 1x1 was 8 lines of dlib text.


def thin_images(folder: Path) -> list[str]:
    sizes = {"w1x800.png": (1, 800), "w2x800.png": (2, 800), "w1x200.png": (1, 200)}
    sizes |= {"h800x2.png": (800, 2), "one.png": (1, 1)}
    for name, size in sizes.items():
        Image.new("RGB", size, (128, 128, 128)).save(folder / name)
    return sorted(str(folder / name) for name in sizes)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_thin_images_have_no_faces_and_never_crash(
    known: Path, unknown_one: Path, jobs: str
) -> None:
    thin = thin_images(unknown_one)
    done = facematch_cli(known, unknown_one, "--no-cache", "-j", jobs, "--format", "json")
    assert done.returncode == 0, done.stderr
    found = rows(done.stdout)
    assert {p: found[p]["status"] for p in thin} == dict.fromkeys(thin, "no_faces")
    assert found[str(unknown_one / "a.jpg")]["faces"][0]["name"] == "Barack Obama"  # type: ignore[index]
    assert done.stderr == ""


@pytest.mark.parametrize("model", ["hog", "cnn"])
def test_thin_images_with_every_detector(tmp_path: Path, model: str) -> None:
    thin = thin_images(tmp_path)
    done = facematch_cli("detect", *thin, "--model", model, "--upsample", "1", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["status"] for line in done.stdout.splitlines()] == ["no_faces"] * 5
    for path in thin:  # the face_recognition API guards dlib the same way
        image = facematch.load_image_file(path)
        assert facematch.face_locations(image, 1, model) == []


def test_an_internal_error_is_one_whole_line() -> None:
    dlib_like = RuntimeError("\n\nError detected at line 623.\nError detected in file tensor.h.\n")
    assert failure_message(dlib_like) == (
        "internal error: RuntimeError: Error detected at line 623. Error detected in file tensor.h."
    )
    pybind_like = TypeError(
        "get_face_chips(): incompatible function arguments. The following argument types are "
        "supported:\n    1. (img: numpy.ndarray[(rows,cols,3),uint8], faces: ...) -> list\n\n"
        "Invoked with: array([[...]])"
    )
    assert failure_message(pybind_like) == (
        "internal error: TypeError: get_face_chips(): incompatible function arguments. The "
        "following argument types are supported: 1. (img: numpy.ndarray[(rows,cols,3),uint8], "
        "faces: ...) -> list Invoked with: array([[...]])"
    )


# 1: a worker that dies takes only its own image with it.


def test_a_dead_worker_costs_only_its_own_item() -> None:
    pool = ProcessPool(2)
    items = [*range(12), -11, *range(12, 30), -9, *range(30, 36)]
    try:
        out = list(pool.map(crashy.square_or_die, items, lambda item, why: (item, why)))
    finally:
        pool.close()
    expected: list[object] = [i * i for i in items if i >= 0]
    assert [o for o in out if not isinstance(o, tuple)] == expected
    failures = [o for o in out if isinstance(o, tuple)]
    assert [item for item, _ in failures] == [-11, -9]
    assert "crashed (SIGSEGV)" in failures[0][1]
    assert "killed (SIGKILL: out of memory?)" in failures[1][1]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


def many_photos(folder: Path, data: Path, copies: int = 24) -> Path:
    """Distinct files (so the cache cannot help) of real faces: enough work for a while."""
    folder.mkdir()
    portrait = Image.open(data / "obama2.jpg")
    for i in range(copies):
        portrait.rotate(0.5 * i).save(folder / f"{i:02d}.jpg", quality=92)
    return folder


def start_run(args: Sequence[str | Path]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "facematch", *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def workers_of(process: subprocess.Popen[str], count: int, timeout: float = 60) -> set[int]:
    """Wait until the run has ``count`` worker processes (and the forkserver), and answered once."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    # jsonl: one line per image, flushed at once. Read a byte at a time from the pipe
    # itself: readline() may buffer the next lines too, and communicate() reads the
    # pipe past that buffer, so a line that came early was lost to the comparison.
    first = b""
    while not first.endswith(b"\n") and (byte := os.read(process.stdout.fileno(), 1)):
        first += byte
    assert first, "the run ended before answering anything"
    while time.monotonic() < deadline:
        below = descendants(process.pid)
        if len(below) >= count:
            return below
        time.sleep(0.05)
    raise AssertionError(f"only {descendants(process.pid)} below {process.pid}")


@pytest.mark.skipif(not LINUX, reason="reads the process tree from /proc")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_killing_the_main_process_leaves_no_worker(
    tmp_path: Path, known: Path, data: Path, how: signal.Signals
) -> None:
    photos = many_photos(tmp_path / "many", data, copies=40)
    run = start_run([known, photos, "--no-cache", "-j", "2", "--format", "jsonl"])
    below = workers_of(run, 3)  # the forkserver and two workers
    run.send_signal(how)
    code = run.wait(timeout=30)
    deadline = time.monotonic() + 10
    while alive(below) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(below), f"left running: {alive(below)}"
    if how == signal.SIGTERM:
        assert code == EXIT_TERMINATED
        assert run.stderr is not None
        stderr = run.stderr.read()
        assert "Traceback" not in stderr and "terminated" in stderr


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads the process tree from /proc")
def test_a_worker_killed_mid_run_loses_nothing(tmp_path: Path, known: Path, data: Path) -> None:
    photos = many_photos(tmp_path / "many", data, copies=30)
    args = [known, photos, "--no-cache", "-j", "2", "--format", "jsonl"]
    run = start_run(args)
    below = workers_of(run, 3)
    forkserver = min(below)  # started first
    victim = max(pid for pid in below if pid != forkserver)
    os.kill(victim, signal.SIGKILL)
    out, err = run.communicate(timeout=240)
    assert run.returncode == 0, err
    undisturbed = facematch_cli(*args)
    assert undisturbed.returncode == 0
    first_line = undisturbed.stdout.splitlines()[0]
    assert [first_line, *out.splitlines()] == undisturbed.stdout.splitlines()


# 4: a FIFO (or anything that blocks on open) hung the run for ever.


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifos_are_refused_not_waited_for(known: Path, unknown_one: Path, tmp_path: Path) -> None:
    os.mkfifo(unknown_one / "x.jpg")
    os.mkfifo(known / "Nobody.jpg")
    for args in (
        [known, unknown_one, "--format", "json"],
        [known, unknown_one, "--format", "json", "--no-cache", "-j", "1"],
        [known, unknown_one / "x.jpg", "--format", "json"],
        ["detect", unknown_one, "--format", "json"],
    ):
        done = facematch_cli(*args, timeout=120)
        no_traceback(done)
        assert done.returncode == EXIT_PARTIAL, done.stderr
        fifo = rows(done.stdout)[str(unknown_one / "x.jpg")]
        assert fifo["status"] == "error" and "FIFO" in str(fifo["error"])
        assert "FIFO" in done.stderr
    people = tmp_path / "people"
    for person, photo in (("obama", "obama.jpg"), ("biden", "biden.jpg")):
        (people / person).mkdir(parents=True)
        shutil.copy(Path(__file__).parent / "data" / photo, people / person / photo)
    os.mkfifo(people / "obama" / "pipe.png")
    done = facematch_cli("evaluate", people, "--format", "json", timeout=120)
    assert done.returncode == EXIT_PARTIAL and "FIFO" in done.stderr
    assert json.loads(done.stdout)["unreadable"][0]["path"] == str(people / "obama" / "pipe.png")


# 5: a link loop or an unreadable subfolder aborted discovery with a traceback.


def test_a_link_loop_is_searched_once(known: Path, unknown_one: Path) -> None:
    (unknown_one / "self").symlink_to(".")
    (unknown_one / "sub").mkdir()
    (unknown_one / "sub" / "up").symlink_to("..")
    done = facematch_cli(known, unknown_one, "-r", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert list(rows(done.stdout)) == [str(unknown_one / "a.jpg")]
    assert "already searched" in done.stderr


def as_plain_user() -> list[str]:
    """A command prefix under which file permissions apply, even to root.

    Root reads every folder whatever its mode; without the capabilities that
    allow that (util-linux's setpriv), root is refused like anyone else.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot apply")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_an_unreadable_folder_is_a_row(known: Path, unknown_one: Path, tmp_path: Path) -> None:
    locked = unknown_one / "locked"
    locked.mkdir()
    shutil.copy(unknown_one / "a.jpg", locked / "b.jpg")
    locked.chmod(0)
    (known / "Joe Biden").mkdir()
    (known / "Joe Biden" / "private").mkdir(mode=0)
    try:
        done = subprocess.run(
            [*as_plain_user(), sys.executable, "-m", "facematch", known, unknown_one, "-r",
             "--format", "json"],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        locked.chmod(0o755)
    no_traceback(done)
    assert done.returncode == EXIT_PARTIAL, done.stderr
    found = rows(done.stdout)
    assert found[str(locked)]["status"] == "error"
    assert "cannot read folder" in str(found[str(locked)]["error"])
    assert found[str(unknown_one / "a.jpg")]["faces"][0]["name"] == "Barack Obama"  # type: ignore[index]
    assert "private: cannot read folder" in done.stderr


# 7: evaluate counted unreadable files as "no face found", silently, with exit 0.


def test_evaluate_reports_unreadable_files_apart(tmp_path: Path, data: Path) -> None:
    people = tmp_path / "people"
    for person, photos in {"obama": ["obama.jpg", "obama2.jpg"], "biden": ["biden.jpg"]}.items():
        (people / person).mkdir(parents=True)
        for photo in photos:
            shutil.copy(data / photo, people / person / photo)
    (people / "obama" / "empty.jpg").write_bytes(b"")
    (people / "biden" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    done = facematch_cli("evaluate", people, "--format", "json")
    no_traceback(done)
    assert done.returncode == EXIT_PARTIAL
    report = json.loads(done.stdout)
    bad = {Path(item["path"]).name for item in report["unreadable"]}
    assert bad == {"empty.jpg", "gone.jpg"}
    assert report["no_face"] == []
    assert "empty.jpg" in done.stderr and "gone.jpg" in done.stderr

    pairs = tmp_path / "pairs.csv"
    shutil.copy(data / "obama.jpg", tmp_path / "a.jpg")
    shutil.copy(data / "obama2.jpg", tmp_path / "b.jpg")
    pairs.write_text("a.jpg,b.jpg,1\na.jpg,missing.jpg,0\n")
    done = facematch_cli("evaluate", pairs)
    assert done.returncode == EXIT_PARTIAL
    assert "missing.jpg: no such file" in done.stderr
    assert "1 unreadable" in done.stdout


def test_a_binary_pairs_file_is_a_usage_error(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes(bytes(range(256)) * 4)
    done = facematch_cli("evaluate", pairs)
    assert done.returncode == EXIT_USAGE
    assert done.stderr.count("\n") == 1 and "not a UTF-8 text file" in done.stderr


# 8 and 15: file names with undecodable bytes, control characters and formulas.


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="names must be bytes")
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_names_that_are_not_text_are_escaped_everywhere(
    known: Path, tmp_path: Path, data: Path, encoding: str
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    names = {b"b\xff.jpg": "b\\xff.jpg", b"\x1b[31mred.jpg": "\\x1b[31mred.jpg"}
    names[b"=HYPERLINK(1).jpg"] = "=HYPERLINK(1).jpg"
    names["José.jpg".encode()] = "José.jpg" if encoding == "utf-8" else "Jos\\xe9.jpg"
    in_json = {**names, "José.jpg".encode(): "José.jpg"}  # JSON has its own \\u escapes
    for raw in names:
        shutil.copy(data / "obama2.jpg", os.path.join(os.fsencode(folder), raw))
    env = {**os.environ, "PYTHONIOENCODING": encoding, "LC_ALL": "C.UTF-8"}
    outputs = {}
    for fmt in ("compat", "csv", "json", "jsonl"):
        done = subprocess.run(
            [sys.executable, "-m", "facematch", str(known), str(folder), "--format", fmt],
            capture_output=True,
            env=env,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr
        assert b"\x1b" not in done.stdout and b"\xff" not in done.stdout
        outputs[fmt] = done.stdout.decode(encoding)
    shown = sorted(f"{folder}/{name}" for name in names.values())
    shown_json = sorted(f"{folder}/{name}" for name in in_json.values())
    assert sorted(line.split(",")[0] for line in outputs["compat"].splitlines()) == shown
    assert sorted(item["path"] for item in json.loads(outputs["json"])) == shown_json
    jsonl = sorted(json.loads(line)["path"] for line in outputs["jsonl"].splitlines())
    assert jsonl == shown_json
    cells = sorted(row["path"] for row in csv.DictReader(io.StringIO(outputs["csv"])))
    assert cells == shown


def test_csv_cells_never_start_a_formula(known: Path, tmp_path: Path, data: Path) -> None:
    folder = tmp_path / "u"
    folder.mkdir()
    for name in ("=SUM(A1).jpg", "+1.jpg", "-x.jpg", "@cmd.jpg"):
        shutil.copy(data / "obama2.jpg", folder / name)
    names = sorted(p.name for p in folder.iterdir())
    done = facematch_cli(known, "--format", "csv", "--", *names, cwd=folder)
    assert done.returncode == 0, done.stderr
    paths = [row["path"] for row in csv.DictReader(io.StringIO(done.stdout))]
    assert paths == ["'+1.jpg", "'-x.jpg", "'=SUM(A1).jpg", "'@cmd.jpg"]


# 9: a 16-bit image under the pixel limit needed 4 GB (conversion through float64).


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads the peak memory from /proc")
def test_a_large_16_bit_image_needs_no_more_than_its_size(tmp_path: Path) -> None:
    path = tmp_path / "scan16.png"
    pixels = np.zeros((12000, 12000), dtype=np.uint16)
    pixels[::7] = 40000
    Image.fromarray(pixels).save(path)
    del pixels
    code = (
        "import sys\n"
        "from facematch.sources.images import load_scaled\n"
        "small, size = load_scaled(sys.argv[1], lambda h, w: 1600 / max(h, w))\n"
        "assert size == (12000, 12000) and small.shape == (1600, 1600, 3), small.shape\n"
        "assert small.max() == 40000 * 255 // 65535 or small.max() > 0\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked parent.
        "status = open('/proc/self/status').read()\n"
        "print(next(l.split()[1] for l in status.splitlines() if l.startswith('VmHWM')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout) / 1024
    # The decoded 16-bit image alone is 288 MB; float64 needed over 2 GB.
    assert peak_mb < 900, f"peak {peak_mb:.0f} MB"


# 12: --jobs had no cap.


def test_jobs_are_capped_at_the_cores(known: Path, unknown_one: Path) -> None:
    done = facematch_cli(known, unknown_one, "-j", "10000", "--no-cache")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{unknown_one / 'a.jpg'},Barack Obama\n"
    assert "--jobs 10000 is more than the" in done.stderr
    assert resolve_jobs(10000) == resolve_jobs(None)


# 15: the smaller ones.


def test_a_closed_pipe_ends_quietly_with_141(known: Path, tmp_path: Path, data: Path) -> None:
    photos = many_photos(tmp_path / "many", data, copies=6)
    run = start_run([known, photos, "--format", "jsonl", "-j", "1"])
    assert run.stdout is not None and run.stderr is not None
    assert run.stdout.readline()
    run.stdout.close()
    assert run.wait(timeout=240) == EXIT_OUTPUT_CLOSED
    stderr = run.stderr.read()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_disk_for_stdout_is_one_line(known: Path, unknown_one: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "facematch", known, unknown_one],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=240,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "facematch: error: cannot write the output: No space left on device\n"


def test_a_missing_only_input_is_a_usage_error(known: Path, tmp_path: Path) -> None:
    done = facematch_cli(known, tmp_path / "nope")
    assert done.returncode == EXIT_USAGE
    assert done.stderr == f"facematch: error: no such file or directory: {tmp_path / 'nope'}\n"


@pytest.mark.slow
def test_pillow_warnings_never_reach_the_terminal(known: Path, tmp_path: Path, data: Path) -> None:
    import struct

    # An EXIF block whose orientation tag points past the end of the block.
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x0112, 3, 4000, 500)
    payload = b"Exif\x00\x00" + tiff + b"\x00\x00\x00\x00"
    original = (data / "biden.jpg").read_bytes()
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    path = tmp_path / "bad-exif.jpg"
    path.write_bytes(original[:2] + segment + original[2:])
    for quiet in ([], ["-q"]):
        done = facematch_cli(known, path, "--no-cache", "-j", "1", *quiet)
        assert done.returncode == 0
        assert done.stdout == f"{path},Joe Biden\n"
        assert done.stderr == ""


def test_the_bomb_message_quotes_our_limit(known: Path, tmp_path: Path) -> None:
    from test_images import huge_png

    huge_png(tmp_path / "bomb.png", 20000, 20000)  # Pillow itself refuses this one
    huge_png(tmp_path / "big.png", 13000, 12000)  # 156 MP: over our limit only
    done = facematch_cli(known, tmp_path / "bomb.png", tmp_path / "big.png", "--format", "json")
    assert done.returncode == EXIT_PARTIAL
    errors = [str(item["error"]) for item in json.loads(done.stdout)]
    assert all("over the 150 MP limit" in e for e in errors), errors
    assert "400 MP" in errors[1] and "156 MP" in errors[0]


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads the process tree from /proc")
def test_a_run_killed_while_writing_the_cache_changes_no_answer(
    tmp_path: Path, known: Path, data: Path
) -> None:
    photos = many_photos(tmp_path / "many", data, copies=30)
    cache = tmp_path / "cache"
    args = [known, photos, "--format", "jsonl", "-j", "2"]
    run = start_run([*args, "--cache-dir", cache])
    workers_of(run, 3)  # it has answered once, so entries are being written
    run.kill()
    run.wait(timeout=30)
    again = facematch_cli(*args, "--cache-dir", cache)
    undisturbed = facematch_cli(*args, "--no-cache")
    assert again.returncode == undisturbed.returncode == 0, again.stderr
    assert again.stdout == undisturbed.stdout
    assert again.stderr == ""
