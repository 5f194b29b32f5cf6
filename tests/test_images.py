"""Finding image files and loading every format and mode upright as RGB."""

from __future__ import annotations

import os
from pathlib import Path

import malformed
import numpy as np
import pytest
from PIL import Image

from facematch.encode.faces import FALLBACK_CNN_MAX_PIXELS, FaceSettings, detect
from facematch.encode.photo import load_working
from facematch.errors import ImageError
from facematch.sources.images import discover, load_rgb, load_scaled, luminance


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    """A small real portrait (Obama), quick to detect in."""
    image = Image.open(Path(__file__).parent / "data" / "obama.jpg").convert("RGB")
    return image.resize((455, 568))


def faces_in(path: Path) -> int:
    return len(detect(load_rgb(path), FaceSettings()))


@pytest.mark.parametrize(
    ("suffix", "fmt"),
    [
        (".jpg", "JPEG"),
        (".JPEG", "JPEG"),
        (".png", "PNG"),
        (".webp", "WEBP"),
        (".bmp", "BMP"),
        (".gif", "GIF"),
        (".tif", "TIFF"),
        (".tiff", "TIFF"),
    ],
)
def test_every_format_finds_the_face(
    portrait: Image.Image, tmp_path: Path, suffix: str, fmt: str
) -> None:
    path = tmp_path / f"face{suffix}"
    portrait.save(path, fmt)
    assert discover([str(tmp_path)]) and faces_in(path) == 1


def test_heic_with_the_optional_extra(portrait: Image.Image, tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "face.heic"
    pillow_heif.from_pillow(portrait).save(path, quality=90)
    assert [f.path for f in discover([str(tmp_path)])] == [str(path)]
    assert faces_in(path) == 1


def test_avif(portrait: Image.Image, tmp_path: Path) -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    path = tmp_path / "face.avif"
    portrait.save(path, quality=90)
    assert [f.path for f in discover([str(tmp_path)])] == [str(path)]
    assert faces_in(path) == 1


def test_gif_uses_the_first_frame(portrait: Image.Image, tmp_path: Path) -> None:
    blank = Image.new("RGB", portrait.size, "white")
    path = tmp_path / "anim.gif"
    portrait.save(path, save_all=True, append_images=[blank, blank])
    assert faces_in(path) == 1


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "CMYK", "I;16", "I", "1"])
def test_every_mode_becomes_rgb(portrait: Image.Image, tmp_path: Path, mode: str) -> None:
    if mode == "I;16":
        gray = np.asarray(portrait.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(gray)
        assert image.mode == "I;16"
    elif mode == "I":
        image = portrait.convert("L").convert("I")
    else:
        image = portrait.convert(mode)
    path = tmp_path / ("face.tif" if mode in ("CMYK", "I") else "face.png")
    image.save(path)
    rgb = load_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (568, 455, 3)
    if mode != "1":  # a 1-bit image keeps too little of a face to find
        assert faces_in(path) == 1
    if mode == "I;16":
        # 16-bit data is scaled down, not clipped to white.
        assert abs(int(rgb.mean()) - int(np.asarray(portrait.convert("L")).mean())) <= 1


def test_exif_orientation_is_applied(data: Path) -> None:
    upright = load_rgb(data / "obama_exif_rotated.jpg")
    assert upright.shape == (1137, 910, 3)
    assert faces_in(data / "obama_exif_rotated.jpg") == 1


def test_discovery_is_sorted_anchored_and_case_insensitive(tmp_path: Path) -> None:
    for name in ["b.JPG", "a.png", "c.jpg.txt", "notes.txt", ".hidden.jpg", "d.jpeg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.webp").write_bytes(b"x")
    (tmp_path / "folder.jpg").mkdir()
    top = [(Path(f.path).name, f.problem) for f in discover([str(tmp_path)])]
    assert top == [
        ("a.png", None),
        ("b.JPG", None),
        ("d.jpeg", None),
        ("folder.jpg", "is a directory, not an image file"),
    ]
    deep = [Path(f.path).name for f in discover([str(tmp_path)], recursive=True)]
    assert deep == ["a.png", "b.JPG", "d.jpeg", "folder.jpg", "e.webp"]


def test_a_file_named_explicitly_is_tried_whatever_its_name(
    portrait: Image.Image, tmp_path: Path
) -> None:
    path = tmp_path / "photo.data"
    portrait.save(path, "PNG")
    assert [f.path for f in discover([str(path)])] == [str(path)]
    assert faces_in(path) == 1


def test_misnamed_file_is_read_by_content(portrait: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "really-a-png.jpg"
    portrait.save(path, "PNG")
    assert faces_in(path) == 1


def huge_png(path: Path, width: int, height: int) -> None:
    """A tiny file whose header claims a huge image (a decompression bomb)."""
    path.write_bytes(malformed.huge_png(width, height))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "not an image"),
        (lambda p: p.write_bytes(b"this is not an image at all"), "not an image"),
        (lambda p: huge_png(p, 60000, 60000), "limit"),
        (lambda p: p.mkdir(), "directory"),
    ],
    ids=["zero-byte", "garbage", "bomb", "directory"],
)
def test_bad_files_raise_one_line_image_errors(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "bad.jpg"
    make(path)  # type: ignore[operator]
    with pytest.raises(ImageError, match=message) as info:
        load_rgb(path)
    assert "\n" not in str(info.value)


def test_truncated_jpeg_is_an_image_error(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes((data / "obama.jpg").read_bytes()[:20000])
    with pytest.raises(ImageError, match=r"truncated|cannot decode"):
        load_rgb(path)


def test_dangling_symlink_is_an_image_error(tmp_path: Path) -> None:
    path = tmp_path / "gone.jpg"
    os.symlink(tmp_path / "nowhere.jpg", path)
    with pytest.raises(ImageError, match="no such file"):
        load_rgb(path)


def test_tiny_image_has_no_face(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(path)
    assert faces_in(path) == 0


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_shrunk_working_copy_for_hog_is_its_luminance(
    data: Path, tmp_path: Path, orientation: int
) -> None:
    """A photo over 1600 px is detected on a copy decoded as luminance only (JPEG draft
    mode "L"): upright, the luma of the RGB copy within JPEG's rounding, same face found."""
    path = data / "obama3.jpg"  # 1434 x 2333: shrunk to 1600 px for detection
    if orientation != 1:  # stored turned, with the EXIF flag that puts it upright
        path = tmp_path / "turned.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        turned = Image.open(data / "obama3.jpg").transpose(Image.Transpose.ROTATE_90)
        turned.save(path, exif=exif, quality=95)
    settings = FaceSettings()
    grey, size = load_scaled(path, settings.working_scale, luminance_over=0)
    rgb, rgb_size = load_scaled(path, settings.working_scale)
    assert size == rgb_size == (2333, 1434)
    assert grey.shape == rgb.shape[:2] and 1590 < max(grey.shape) <= 1600
    difference = np.abs(grey.astype(int) - luminance(rgb).astype(int))
    assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 3
    (from_grey,) = detect(grey, settings, size)
    (from_rgb,) = detect(rgb, settings, size)
    side = from_rgb.right - from_rgb.left
    assert (
        max(abs(a - b) for a, b in zip(from_grey.css(), from_rgb.css(), strict=True)) <= side / 20
    )


def test_a_copy_that_is_not_shrunk_stays_rgb(data: Path) -> None:
    """Faces are described from an unshrunk copy, so it keeps its colour."""
    settings = FaceSettings()
    image, size = load_scaled(data / "obama.jpg", settings.working_scale, luminance_over=0)
    assert image.shape == (*size, 3)
    assert np.array_equal(image, load_rgb(data / "obama.jpg"))


def test_a_copy_small_enough_for_the_cnn_fallback_stays_rgb(data: Path) -> None:
    """HOG's fallback runs dlib's CNN on small working copies, and the CNN sees colour."""
    path = str(data / "obama3.jpg")
    large, _ = load_working(path, FaceSettings())
    small, size = load_working(path, FaceSettings(min_face_size=200))
    assert large.ndim == 2 and max(large.shape) > 1590
    assert small.ndim == 3 and small.shape[0] * small.shape[1] <= FALLBACK_CNN_MAX_PIXELS
    assert size == (2333, 1434)
    without_fallback, _ = load_working(path, FaceSettings(min_face_size=200, fallback=False))
    assert without_fallback.shape == small.shape[:2]
    assert load_working(path, FaceSettings(model="cnn"))[0].ndim == 3
