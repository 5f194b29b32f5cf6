"""Pictures of video rows: ``--annotate`` writes each range's best sample (or, with
``--per-frame``, each sampled frame with faces), and ``--report`` lists the ranges.

On the real 4 s Hamilton clip, with Lin-Manuel Miranda as the only known person:
he is a named range, Alex Lacamoire at the piano an ``unknown_person`` range.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import run
from PIL import Image

from facematch.cli import EXIT_PARTIAL
from facematch.matching.appearances import clock
from facematch.output.pictures import COLOURS, AnnotatedCopies, Annotations, file_safe, still_path
from facematch.records import Appearance, FaceBox, FaceMatch, FrameFaces, VideoResult
from facematch.sources import video

pytest.importorskip("av")

DATA = Path(__file__).parent / "data"
CLIP_NAME = "hamilton-4s.mp4"
LIN = "Lin-Manuel Miranda"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A known folder with Lin-Manuel Miranda, the clip in a subfolder of the inputs
    (beside a photo), and one cache."""
    root = tmp_path_factory.mktemp("pictures")
    known = root / "known"
    known.mkdir()
    shutil.copy(DATA / "lin-manuel-miranda.jpg", known / f"{LIN}.jpg")
    clips = root / "in" / "sub"
    clips.mkdir(parents=True)
    shutil.copy(DATA / CLIP_NAME, clips / CLIP_NAME)
    shutil.copy(DATA / "obama_small.jpg", root / "in" / "photo.jpg")
    return known, clips / CLIP_NAME, root / "cache"


def decoded(clip: Path, time: float) -> np.ndarray:
    """The sample at ``time`` as the matching pass decodes it (every sample, 1 a second)."""
    frame = next(f for f in video.frames(str(clip), 1.0) if f.time == time)
    return frame.image().astype(int)


def near(pixel: np.ndarray, colour: tuple[int, int, int], slack: int = 60) -> bool:
    return bool(np.abs(pixel - np.asarray(colour)).max() <= slack)


def test_annotate_writes_each_ranges_best_sample_with_its_box(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    known, clip, cache = setup
    out, page = tmp_path / "out", tmp_path / "report.html"
    common = ("-j", "1", "--no-fallback", "--cache-dir", cache)
    result = run(known, clip.parent.parent, "-r", "--format", "json", *common, "--annotate", out,
                 "--report", page)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    photo, row = json.loads(result.stdout)
    assert photo["path"].endswith("photo.jpg")
    ranges = row["appearances"]
    assert [a["name"] for a in ranges] == [LIN, None]  # Alex Lacamoire is not known here

    # One picture per range, at the video's relative path, named by time and person.
    expected = {
        f"sub/{CLIP_NAME}@{clock(a['time']).replace(':', '-')}"
        f"_{file_safe(a['name'] or 'unknown_person')}.jpg"
        for a in ranges
    }
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == expected | {"photo.jpg"}
    assert f"sub/{CLIP_NAME}@00-00-00.000_Lin-Manuel-Miranda.jpg" in written

    for appearance, colour in zip(
        ranges, (COLOURS["named"][0], COLOURS["unknown"][0]), strict=True
    ):
        name = appearance["name"]
        path = still_path(out / "sub" / CLIP_NAME, appearance["time"], name)
        assert path.stat().st_size > 10_000
        with Image.open(path) as picture:
            assert picture.format == "JPEG" and picture.size == (640, 360)
            pixels = np.asarray(picture.convert("RGB")).astype(int)
        frame = decoded(clip, appearance["time"])
        box = appearance["box"]
        top, right, bottom, left = (box[k] for k in ("top", "right", "bottom", "left"))
        # The box outline is drawn where the row says, in the kind's colour (a 2 px
        # line, its colour blurred by JPEG), and not 3 px further out...
        rows = slice(top + 4, bottom - 4)
        edges = ((slice(left, left + 2), left - 3), (slice(right - 1, right + 1), right + 3))
        for inside, outside in edges:
            edge = np.median(pixels[rows, inside].reshape(-1, 3), axis=0)
            assert near(edge, colour), (name, edge)
            assert not near(np.median(frame[rows, inside].reshape(-1, 3), axis=0), colour)
            assert not near(np.median(pixels[rows, outside], axis=0), colour)
        # ...the label sits on top of it, in the same colour...
        above = np.median(pixels[top - 3, left : right + 1], axis=0)
        assert near(above, colour), (name, above)
        # ...and the rest is the sampled frame itself (JPEG at quality 90).
        assert np.abs(pixels[250:, :] - frame[250:, :]).mean() < 4

    html = page.read_text()
    section = html[html.index(f"<h2>{clip} (video)</h2>") :]
    section = section[: section.index("</section>")]
    assert section.count('data-filter="=Lin-Manuel Miranda"') == 1
    assert section.count('data-filter="?unknown"') == 1
    assert section.count("<td>00:00:00.000</td>") >= 2  # the ranges' starts
    # Two range crops, the photo's face and the known photo it is nearest to.
    assert html.count("data:image/jpeg;base64,") == 4


def test_per_frame_writes_each_sampled_frame_with_faces(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    known, clip, cache = setup
    out = tmp_path / "out"
    common = ("-j", "1", "--no-fallback", "--cache-dir", cache, "--per-frame")
    result = run(known, clip, "--format", "json", *common, "--annotate", out)
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    with_faces = [f for f in row["frames"] if f["faces"]]
    assert with_faces and len(with_faces) < len(row["frames"]) == 4
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"{CLIP_NAME}@{clock(f['time']).replace(':', '-')}.jpg" for f in with_faces]
    first = with_faces[0]
    with Image.open(out / written[0]) as picture:
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    for face in first["faces"]:
        box = face["box"]
        middle = (box["top"] + box["bottom"]) // 2
        kinds = [COLOURS[k][0] for k in ("named", "ambiguous", "unknown")]
        assert any(near(pixels[middle, box["left"]], c) for c in kinds)


def cut_short(clip: Path, target: Path) -> None:
    """``clip`` with its index first (faststart, no re-encoding), then cut at 70%."""
    import av

    with (
        av.open(str(clip)) as source,
        av.open(str(target), "w", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    whole = target.read_bytes()
    target.write_bytes(whole[: len(whole) * 7 // 10])


def test_bad_videos_get_no_picture_or_those_decoded_and_the_run_goes_on(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    known, clip = setup[0], setup[1]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "empty.mp4").write_bytes(b"")
    cut_short(clip, folder / "cut.mp4")
    out, page = tmp_path / "out", tmp_path / "r.html"
    result = run(known, folder, "-j", "1", "--no-cache", "--no-fallback", "--format", "json",
                 "--annotate", out, "--report", page)  # fmt: skip
    assert result.exit_code == EXIT_PARTIAL
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert rows["empty.mp4"]["status"] == rows["cut.mp4"]["status"] == "error"
    # The samples decoded before the cut have their ranges, and so their pictures.
    decoded = rows["cut.mp4"]["appearances"]
    assert decoded and all(a["end"] < 4 for a in decoded)
    expected = {still_path(out / "cut.mp4", a["time"], a["name"]).name for a in decoded}
    assert {p.name for p in out.iterdir()} == expected
    html = page.read_text()
    assert "empty.mp4 (video)" in html and "cut.mp4 (video)" in html


def test_frames_at_gives_the_samples_of_a_full_pass(setup: tuple[Path, Path, Path]) -> None:
    clip = str(setup[1])
    full = {f.time: f.image() for f in video.frames(clip, 2.0)}
    for strategy in ("seek", "through"):
        picked = list(video.frames_at(clip, [3.5, 0.5, 3.5], 2.0, strategy=strategy))
        assert [f.time for f in picked] == [0.5, 3.5]
        for frame in picked:
            assert np.array_equal(frame.image(), full[frame.time])


def test_pictures_never_overwrite_an_input(tmp_path: Path) -> None:
    """A photo among the inputs named like a picture of ours is left alone."""
    clip = tmp_path / "clip.mp4"
    photo = tmp_path / "out" / "clip.mp4@00-00-01.000_Ada-Lovelace.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"an input")
    targets = {str(clip): tmp_path / "out" / "clip.mp4", str(photo): tmp_path / "out" / "x.jpg"}
    copies = AnnotatedCopies(targets, Annotations(0.6))
    box = FaceBox(top=10, right=50, bottom=50, left=10)
    ada = Appearance("Ada Lovelace", 0.0, 3.0, 3, 0.4, 1.0, box)
    stranger = Appearance(None, 0.0, 2.0, 2, None, 1.0, box)
    row = VideoResult(str(clip), "ok", appearances=(ada, stranger))
    copies.add_frame(row, 1.0, Image.new("RGB", (64, 64)))
    assert photo.read_bytes() == b"an input"
    assert (tmp_path / "out" / "clip.mp4@00-00-01.000_unknown_person.jpg").exists()
    assert copies.written == 1
    per_frame = VideoResult(
        str(clip), "ok", frames=(FrameFaces(1.0, (FaceMatch(box, None, 0.7),)),)
    )
    copies.add_frame(per_frame, 1.0, Image.new("RGB", (64, 64)))
    assert (tmp_path / "out" / "clip.mp4@00-00-01.000.jpg").exists()


def test_file_safe_names() -> None:
    assert file_safe("Lin-Manuel Miranda") == "Lin-Manuel-Miranda"
    assert file_safe("Zoë  O'Brien/..") == "Zoë-O-Brien"
    assert file_safe("...") == "person"
    assert len(file_safe("x" * 300)) == 80
