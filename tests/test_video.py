"""Faces in video: who appears, and when, on a real clip and on ground-truth videos.

The ground-truth videos (tests/videos.py) show real photos at known times,
strangers in between; the real clip is a 4 s cut of the Hamilton clip from
face_recognition's examples, with Lin-Manuel Miranda on stage.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run

from facematch.cli import EXIT_PARTIAL
from facematch.matching.appearances import appearances, clock
from facematch.records import Appearance, FaceBox, FaceMatch
from facematch.run.pipeline import Pipeline
from facematch.run.tasks import segments
from facematch.sources import video
from facematch.sources.images import discover

pytest.importorskip("av")

from videos import Shot, audio_only, write_reframed, write_video

DATA = Path(__file__).parent / "data"
CLIP = DATA / "hamilton-4s.mp4"
# The ground truth, in seconds: (name, start, end); None is a stranger.
TRUTH = [
    ("Barack Obama", 0.0, 3.0),
    ("Barack Obama", 10.0, 12.0),
    ("Joe Biden", 5.0, 8.0),
    (None, 3.0, 5.0),
    (None, 8.0, 10.0),
]


def shots() -> list[Shot]:
    stranger = DATA / "alex-lacamoire.png"
    return [
        Shot("Barack Obama", DATA / "obama2.jpg", 0, 3),
        Shot(None, stranger, 3, 5),
        Shot("Joe Biden", DATA / "biden.jpg", 5, 8),
        Shot(None, stranger, 8, 10),
        Shot("Barack Obama", DATA / "obama3.jpg", 10, 12),
    ]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ground truth as H.264 (1 s keyframes), its rotated copy (phone style), and VP9."""
    folder = tmp_path_factory.mktemp("videos")
    small = {"width": 480, "height": 270, "rate": 5}
    write_video(folder / "truth.mp4", shots(), keyframe_interval=5, **small)
    write_video(folder / "truth-rotated.mp4", shots(), rotation=90, **small)
    write_video(folder / "truth.webm", shots(), codec="libvpx-vp9", keyframe_interval=10, **small)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: each video is decoded once, then served from it."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def known(tmp_path: Path) -> Path:
    folder = tmp_path / "known"
    folder.mkdir()
    shutil.copy(DATA / "obama.jpg", folder / "Barack Obama.jpg")
    shutil.copy(DATA / "biden.jpg", folder / "Joe Biden.jpg")
    return folder


def ranges(document: dict[str, object]) -> list[tuple[str | None, float, float]]:
    found = document["appearances"]
    assert isinstance(found, list)
    return [(a["name"], a["start"], a["end"]) for a in found]


def test_ground_truth_ranges_in_h264_vp9_and_rotated(
    known: Path, videos: Path, cache: Path
) -> None:
    result = run(known, videos, "--format", "json", "-j", "1", "--cache-dir", cache)
    assert result.exit_code == 0, result.stderr
    documents = {Path(d["path"]).name: d for d in json.loads(result.stdout)}
    assert set(documents) == {"truth.mp4", "truth-rotated.mp4", "truth.webm"}
    for name, document in documents.items():
        assert document["kind"] == "video" and document["status"] == "ok", name
        assert document["duration"] == pytest.approx(12.0, abs=0.25)
        assert ranges(document) == TRUTH, name
    obama = documents["truth.mp4"]["appearances"][0]
    assert obama["start_hms"] == "00:00:00.000" and obama["end_hms"] == "00:00:03.000"
    assert obama["samples"] == 3 and 0 < obama["distance"] < 0.6
    assert obama["time"] in (0.0, 1.0, 2.0)
    # The rotated copy is read upright: the same faces in the same places.
    # (Compared where both chose the same best sample: distances a hair apart may not,
    # and which ones do varies with the installed numpy/FFmpeg builds.)
    upright = documents["truth-rotated.mp4"]["appearances"]
    pairs = zip(documents["truth.mp4"]["appearances"], upright, strict=True)
    same_sample = [(a, b) for a, b in pairs if a["time"] == b["time"]]
    assert same_sample
    for a, b in same_sample:
        assert abs(a["box"]["top"] - b["box"]["top"]) <= 4
        assert abs(a["box"]["left"] - b["box"]["left"]) <= 4


def test_hamilton_clip_names_lin_manuel_miranda(tmp_path: Path) -> None:
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(DATA / "lin-manuel-miranda.jpg", known / "Lin-Manuel Miranda.jpg")
    shutil.copy(DATA / "alex-lacamoire.png", known / "Alex Lacamoire.png")
    # Frames use CenterFace (installed in the test extras): it also finds Alex
    # Lacamoire, small and turned at the piano in the first second, whom HOG misses;
    # and it names nobody in the dark audience or in profile (faces.FLAT_CHIP_CONTRAST,
    # detectors.TURNED_EYE_RATIO).
    result = run(known, CLIP, "-j", "1", "--no-cache", "--no-fallback")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{CLIP}@00:00:00.000-00:00:01.000,Alex Lacamoire",
        f"{CLIP}@00:00:00.000-00:00:04.000,Lin-Manuel Miranda",
    ]
    result = run(known, CLIP, "-j", "1", "--no-cache", "--no-fallback", "--model", "hog")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{CLIP}@00:00:00.000-00:00:04.000,Lin-Manuel Miranda",
    ]


# (width, height, pixel format, display rotation): sizes PyAV hands back with padded
# rows (854, 988, 1080, 1366 px), portrait and landscape, 4:2:0 and 4:4:4, 8 and 10 bits.
ODD_FRAMES = [
    (854, 480, "yuv420p", 0),
    (480, 854, "yuv444p", 0),
    (988, 988, "yuv420p", 0),
    (1080, 1920, "yuv420p", 0),
    (1366, 768, "yuv444p", 0),
    (854, 480, "yuv420p", 90),
    (1366, 768, "yuv420p10le", 0),
    (1080, 1920, "yuv444p10le", 0),
]


def test_frames_of_every_size_and_pixel_format_are_read_and_named(tmp_path: Path) -> None:
    import av

    writable = {f.name for f in av.codec.Codec("libx264", "w").video_formats}
    clips = tmp_path / "clips"
    clips.mkdir()
    for width, height, pix_fmt, rotation in ODD_FRAMES:
        if pix_fmt not in writable:
            continue
        name = f"{width}x{height}-{pix_fmt}-{rotation}.mp4"
        write_reframed(
            clips / name, CLIP, width=width, height=height, pix_fmt=pix_fmt, rotation=rotation
        )
        # The source hands out packed 8-bit RGB, upright, whatever the frame was.
        (frame,) = video.frames(str(clips / name))
        image = frame.image()
        assert image.shape == (height, width, 3) and image.dtype == np.uint8, name
        assert image.flags.c_contiguous, name
    written = sorted(p.name for p in clips.iterdir())
    assert len(written) >= 6
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(DATA / "lin-manuel-miranda.jpg", known / "Lin-Manuel Miranda.jpg")
    result = run(known, clips, "--format", "json", "-j", "1", "--no-cache")
    assert result.exit_code == 0, result.stderr
    assert "internal error" not in result.stderr
    documents = {Path(d["path"]).name: d for d in json.loads(result.stdout)}
    assert sorted(documents) == written
    for name, document in documents.items():
        assert document["status"] == "ok", (name, document.get("error"))
        assert "Lin-Manuel Miranda" in {a["name"] for a in document["appearances"]}, name


def test_formats_and_per_frame_rows(known: Path, videos: Path, cache: Path, data: Path) -> None:
    clip = videos / "truth.mp4"
    common = ("-j", "1", "--cache-dir", cache)
    result = run(known, clip, data / "obama2.jpg", "--format", "csv", *common)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0])[-6:] == ["time", "start", "end", "start_hms", "end_hms", "samples"]
    photo = [r for r in rows if r["path"].endswith("obama2.jpg")]
    assert photo[0]["name"] == "Barack Obama" and photo[0]["start"] == ""
    spans = [(r["name"], float(r["start"]), float(r["end"])) for r in rows if r["start"]]
    assert spans == [(name or "", start, end) for name, start, end in TRUTH]
    biden = next(r for r in rows if r["name"] == "Joe Biden")
    assert (biden["start_hms"], biden["end_hms"], biden["samples"]) == (
        "00:00:05.000",
        "00:00:08.000",
        "3",
    )

    compat = run(known, clip, "--show-distance", *common)
    first = compat.stdout.splitlines()[0]
    assert first.startswith(f"{clip}@00:00:00.000-00:00:03.000,Barack Obama,0.")

    per_frame = run(known, clip, "--per-frame", *common)
    lines = per_frame.stdout.splitlines()
    assert len(lines) == 12  # one face in each of the 12 samples
    assert lines[5] == f"{clip}@00:00:05.000,Joe Biden"
    assert lines[3] == f"{clip}@00:00:03.000,unknown_person"

    jsonl = run(known, clip, "--per-frame", "--format", "jsonl", *common)
    document = json.loads(jsonl.stdout)
    assert [f["time"] for f in document["frames"]] == [float(t) for t in range(12)]
    assert document["frames"][6]["faces"][0]["name"] == "Joe Biden"
    assert "appearances" not in document


def test_another_tolerance_decodes_nothing(
    known: Path, videos: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = videos / "truth.mp4"
    first = run(known, clip, "-j", "1", "--cache-dir", cache, "--format", "json")

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a cached video")

    monkeypatch.setattr("facematch.run.tasks.frames", no_decoding)
    monkeypatch.setattr("facematch.run.pipeline.probe", no_decoding)
    strict = run(known, clip, "-j", "1", "--cache-dir", cache, "-t", "0.3", "--format", "json")
    assert strict.exit_code == 0, strict.stderr
    loose, tight = json.loads(first.stdout)[0], json.loads(strict.stdout)[0]
    assert ranges(loose) == TRUTH
    # Fewer names at 0.3, from the same samples: every range is still there.
    assert sum(a["samples"] for a in tight["appearances"]) >= 12
    assert ranges(tight) != ranges(loose)
    # Another sampling rate is another entry: it decodes.
    again = run(known, clip, "-j", "1", "--cache-dir", cache, "--fps", "2")
    assert again.exit_code == EXIT_PARTIAL and "decoded a cached video" in again.stderr


def test_segments_give_the_same_samples_as_one_pass(
    videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = str(videos / "truth.webm")
    with Pipeline(jobs=1) as pipeline:
        whole = next(pipeline.encode_inputs([clip]))
    monkeypatch.setattr("facematch.run.tasks.MIN_SEGMENT_SECONDS", 5.0)
    monkeypatch.setattr("facematch.run.tasks.MAX_SEGMENT_SECONDS", 5.0)
    assert len(segments(12.0, 1.0, 1)) == 3
    with Pipeline(jobs=1) as pipeline:
        parts = next(pipeline.encode_inputs([clip]))
    assert [s.time for s in parts.samples] == [s.time for s in whole.samples] == list(range(12))
    for a, b in zip(whole.samples, parts.samples, strict=True):
        assert [f.box for f in a.faces] == [f.box for f in b.faces]


def test_seek_and_decode_through_sample_the_same_frames(videos: Path) -> None:
    short_gop = str(videos / "truth.mp4")
    assert video.probe(short_gop).keyframe_interval == pytest.approx(1.0)
    assert video.probe(str(CLIP)).keyframe_interval == pytest.approx(2.0, abs=0.1)
    webm = video.probe(str(videos / "truth.webm"))  # Matroska: its cues are the index
    assert webm.keyframe_interval == pytest.approx(2.0) and webm.strategy() == "seek"
    for path in (short_gop, str(CLIP)):
        seek = list(video.frames(path, 1.0, strategy="seek"))
        through = list(video.frames(path, 1.0, strategy="through"))
        assert [f.time for f in seek] == [f.time for f in through]
        for a, b in zip(seek, through, strict=True):
            assert np.array_equal(a.image(), b.image())
    # Sampling at the frame rate: one sample per frame, B-frames included, to the end.
    progress = video.Decoded()
    every = [f.time for f in video.frames(str(CLIP), 29.97, progress=progress)]
    assert len(every) == 120 and progress.complete
    rotated = next(video.frames(str(videos / "truth-rotated.mp4")))
    assert rotated.size == (270, 480) and rotated.image().shape == (270, 480, 3)
    small, size = rotated.scaled(lambda height, width: 0.5)
    assert small.shape == (135, 240, 3) and size == (270, 480)
    # Upright: the photo's top-left is where the unrotated copy has it.
    upright = next(video.frames(str(videos / "truth.mp4"))).image()
    assert np.abs(rotated.image().astype(int) - upright.astype(int)).mean() < 8


def test_bad_videos_are_error_rows(known: Path, videos: Path, tmp_path: Path, data: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    whole = (videos / "truth.mp4").read_bytes()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mkv").write_text("not a video\n")
    (folder / "cut.mp4").write_bytes(whole[: len(whole) // 3])  # index at the end: lost
    small = {"width": 480, "height": 270, "rate": 5}
    write_video(folder / "faststart.mp4", shots(), options={"movflags": "faststart"}, **small)
    data_bytes = (folder / "faststart.mp4").read_bytes()
    (folder / "faststart.mp4").write_bytes(data_bytes[: len(data_bytes) // 2])
    audio_only(folder / "audio.m4v")
    shutil.copy(data / "obama2.jpg", folder / "photo.jpg")
    result = run(known, folder, "--format", "json", "-j", "1", "--no-cache")
    assert result.exit_code == EXIT_PARTIAL, result.stderr
    rows = {Path(d["path"]).name: d for d in json.loads(result.stdout)}
    assert rows["photo.jpg"]["status"] == "ok"
    errors = {name: row["error"] for name, row in rows.items() if row["status"] == "error"}
    assert set(errors) == {"empty.mp4", "text.mkv", "cut.mp4", "faststart.mp4", "audio.m4v"}
    assert errors["audio.m4v"] == "no video stream in this file"
    assert "truncated" in errors["cut.mp4"]
    assert errors["faststart.mp4"].startswith("the video data ends at 00:00:0")
    # What was decoded before the cut is still reported, and never "no faces".
    assert ranges(rows["faststart.mp4"])[0] == ("Barack Obama", 0.0, 3.0)
    for name in errors:
        assert f"{folder / name}: " in result.stderr


@pytest.mark.usefixtures("fake_faces")
def test_without_the_extra_a_video_is_an_error_row_naming_it(
    known: Path, videos: Path, monkeypatch: pytest.MonkeyPatch, data: Path
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    result = run(known, videos / "truth.mp4", data / "obama2.jpg", "-j", "1", "--format", "csv")
    assert result.exit_code == EXIT_PARTIAL
    rows = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows["truth.mp4"]["status"] == "error"
    hint = "reading videos needs the optional extra: pip install 'facematch[video]'"
    assert rows["truth.mp4"]["error"] == hint
    assert rows["obama2.jpg"]["name"] == "Barack Obama"


def test_import_and_help_never_load_av() -> None:
    code = (
        "import sys, facematch\n"
        "from facematch.cli import run\n"
        "assert run(['--help']) == 0\n"
        "assert 'av' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--fps" in done.stdout and "--per-frame" in done.stdout


def test_folders_yield_videos_for_match_only(tmp_path: Path, data: Path, known: Path) -> None:
    for name in ("a.jpg", "b.MP4", "c.mkv", "d.webm", "e.mov", "f.m4v", "g.avi", "h.mp4.txt"):
        (tmp_path / name).write_bytes(b"")
    found = [Path(f.path).name for f in discover([str(tmp_path)], videos=True)]
    assert found == ["a.jpg", "b.MP4", "c.mkv", "d.webm", "e.mov", "f.m4v", "g.avi"]
    assert [Path(f.path).name for f in discover([str(tmp_path)])] == ["a.jpg"]


def face(name: str | None, distance: float | None = None, size: int = 10) -> FaceMatch:
    return FaceMatch(FaceBox(0, size, size, 0), name, distance)


def test_ranges_bridge_short_gaps_and_end_at_the_video() -> None:
    a, b = face("A", 0.4), face("A", 0.3)
    frames = [(0.0, [a]), (1.0, [a]), (2.0, []), (3.0, []), (4.0, [b]), (5.0, [])]
    frames += [(6.0, []), (7.0, []), (8.0, [a])]
    assert appearances(frames, 1.0, duration=8.5) == [
        Appearance("A", 0.0, 5.0, 3, 0.3, 4.0, b.box),
        Appearance("A", 8.0, 8.5, 1, 0.4, 8.0, a.box),
    ]


def test_unknown_ranges_keep_the_largest_face_and_sort_last() -> None:
    small, large = face(None, 0.9, 10), face(None, 0.8, 30)
    frames = [(0.0, [small, face("B", 0.5)]), (0.5, [large]), (1.0, [small])]
    found = appearances(frames, 0.5)
    assert [(x.name, x.start, x.end, x.samples) for x in found] == [
        ("B", 0.0, 0.5, 1),
        (None, 0.0, 1.5, 3),
    ]
    assert found[1].box == large.box and found[1].time == 0.5 and found[1].distance is None


def test_clock() -> None:
    assert clock(0) == "00:00:00.000"
    assert clock(3723.0456) == "01:02:03.046"


def test_frames_use_centerface_unless_a_detector_is_chosen(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from facematch.detect import detectors
    from facematch.encode.faces import FaceSettings
    from facematch.encode.frames import VideoSettings, video_detector

    monkeypatch.setattr(detectors, "centerface_available", lambda: True)
    assert video_detector(model_given=False, model="hog") == "centerface"
    assert video_detector(model_given=True, model="hog") is None
    assert video_detector(model_given=False, model="cnn") is None
    frames = VideoSettings(detector="centerface").base_settings(FaceSettings(threshold=0.3))
    assert frames.model == "centerface" and frames.threshold is None
    monkeypatch.setattr(detectors, "centerface_available", lambda: False)
    with caplog.at_level("WARNING", logger="facematch"):
        assert video_detector(model_given=False, model="hog") is None
    assert "pip install 'facematch[detector]'" in caplog.text


def test_frames_over_the_pixel_limit_are_refused_before_decoding(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny file can claim huge frames (two 16000x16000 MJPEG frames are 6 MB): the
    # header is enough to refuse it. Here the limit is lowered under a real clip's frames.
    decoded: list[object] = []
    real = video._Opened.info

    def counting(self: video._Opened) -> video.VideoInfo:
        decoded.append(self.path)
        return real(self)

    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 480 * 270 - 1)
    monkeypatch.setattr(video._Opened, "info", counting)
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(DATA / "obama.jpg", known / "Barack Obama.jpg")
    result = run(known, videos / "truth.mp4", "--format", "csv", "-j", "1", "--no-cache")
    assert result.exit_code == EXIT_PARTIAL
    assert "video frames are 480x270 (0 MP), over the 0 MP limit" in result.stderr
    assert decoded == []  # refused from the header, before any frame was read
