"""The ``facematch`` command: parse options, call the pipeline, pick a writer.

Nothing here loads a model or imports dlib/numpy at import time, so
``facematch --help`` and ``--version`` return at once.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click

from facematch import __version__

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = f"""\b
Exit status:
  {EXIT_OK}    every input was read (faces found or not)
  {EXIT_PARTIAL}    finished, but some inputs could not be read (see stderr)
  {EXIT_USAGE}    usage error: bad option, missing known folder, no images
  {EXIT_FATAL}    fatal error: no face in the known folder, a worker died
  {EXIT_INTERRUPTED}  interrupted"""

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("facematch")


class CliError(click.ClickException):
    """A one-line fatal error (exit status 1)."""

    exit_code = EXIT_FATAL

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"facematch: error: {self.format_message()}", err=True)


class CliUsageError(CliError):
    """A one-line usage error (exit status 2)."""

    exit_code = EXIT_USAGE


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"facematch: {record.levelname.lower()}: {record.getMessage()}", err=True)


def setup_logging(quiet: bool) -> None:
    """Warnings and errors on stderr; ``--quiet`` keeps only the errors."""
    log.handlers[:] = [_StderrHandler()]
    log.setLevel(logging.ERROR if quiet else logging.WARNING)
    log.propagate = False


BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def compat_args(args: list[str]) -> list[str]:
    """Accept face_recognition's ``--show-distance true`` (it took a value, we take a flag)."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        following = args[i + 1].lower() if i + 1 < len(args) else ""
        if arg == "--show-distance" and following in BOOLEAN_WORDS:
            skip = True
            if BOOLEAN_WORDS[following]:
                out.append(arg)
            continue
        out.append(arg)
    return out


class DefaultGroup(click.Group):
    """A group whose ``match`` command runs when no subcommand is named."""

    default_command = "match"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = compat_args(args)
        first = args[0] if args else None
        if (
            first is not None
            and first not in self.commands
            and first
            not in (
                "--help",
                "-h",
                "--version",
            )
        ):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        command = self.commands[self.default_command]
        with click.Context(command, info_name=ctx.info_name, parent=None) as sub:
            command.format_help(sub, formatter)
        self.format_commands(ctx, formatter)


class Tolerance(click.ParamType):  # type: ignore[type-arg]
    """A distance from 0 to 2, or ``auto``."""

    name = "FLOAT|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) or value == "auto":
            return value
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'auto'", param, ctx)
        if not 0.0 <= number <= 2.0:
            self.fail(f"{number} is not in the range 0 to 2", param, ctx)
        return number


TOLERANCE = Tolerance()


def choose_tolerance(requested: float | str, known_faces: int) -> float:
    """Resolve ``auto``, and warn once when a fixed tolerance will name many strangers."""
    from facematch import calibration

    if requested == "auto":
        return calibration.auto_tolerance(known_faces)
    assert isinstance(requested, float)
    rate = calibration.stranger_match_rate(requested, known_faces)
    if rate > calibration.WARN_RATE:
        log.warning(
            "with %d known faces, a stranger has about a %.0f%% chance of being within "
            "%g of someone; --tolerance auto (%g here) keeps that near %.0f%%",
            known_faces,
            100 * rate,
            requested,
            calibration.auto_tolerance(known_faces),
            100 * calibration.STRANGER_RATE,
        )
    return requested


def fail_with(error: Exception) -> NoReturn:
    """Turn one of our errors into a one-line message and its exit status."""
    from facematch.errors import UsageError

    raise (CliUsageError if isinstance(error, UsageError) else CliError)(str(error)) from None


def face_settings(
    model: str,
    upsample: int,
    min_face_size: int | None,
    landmarks: int = 68,
    jitters: int = 1,
    mirror: bool = True,
    fallback: bool = True,
) -> Any:
    """FaceSettings from the command-line options (imported late: --help stays light)."""
    from facematch.faces import FaceSettings

    return FaceSettings(
        model=model,  # type: ignore[arg-type]
        upsample=upsample,
        min_face_size=min_face_size,
        landmarks=landmarks,
        jitters=jitters,
        mirror=mirror,
        fallback=fallback,
    )


def jobs_option(fn: F) -> F:
    fn = click.option(
        "--cpus",
        "cpus",
        type=int,
        default=None,
        hidden=True,
        help="Alias of --jobs, as in face_recognition (-1 = all cores).",
    )(fn)
    return click.option(
        "--jobs",
        "-j",
        type=int,
        default=None,
        metavar="N",
        help="Worker processes (default: all cores; -1 or 0 also mean all). Alias: --cpus.",
    )(fn)


def detection_options(default_upsample: int) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        fn = click.option(
            "--model",
            type=click.Choice(["hog", "cnn"]),
            default="hog",
            show_default=True,
            help="Face detector: hog (fast, CPU) or cnn (more accurate, slow without a GPU).",
        )(fn)
        fn = click.option(
            "--upsample",
            type=click.IntRange(0, 4),
            default=default_upsample,
            show_default=True,
            help="Times the detector upsamples the image (finds smaller faces, slower).",
        )(fn)
        fn = click.option(
            "--min-face-size",
            type=click.IntRange(min=8),
            default=None,
            metavar="PX",
            help="Smallest face to find, in pixels of the original image; detection runs "
            "on a copy just large enough. Default: what face_recognition finds "
            "(40 px, or 2.5% of the long side of images over 1600 px).",
        )(fn)
        fn = click.option(
            "--recursive", "-r", is_flag=True, help="Descend into subfolders of UNKNOWN."
        )(fn)
        fn = jobs_option(fn)
        return click.option(
            "--quiet",
            "-q",
            is_flag=True,
            help="No progress bar and no warnings; errors still show.",
        )(fn)

    return decorate


def encoding_options(fn: F) -> F:
    fn = click.option(
        "--engine",
        type=click.Choice(["onnx", "dlib"]),
        default=None,
        help="Descriptor engine: onnx (default when onnxruntime is installed; same "
        "numbers, much faster) or dlib.",
    )(fn)
    fn = click.option(
        "--landmarks",
        type=click.Choice(["5", "68"]),
        default="68",
        show_default=True,
        help="Landmark model used to align faces (face_recognition used 5).",
    )(fn)
    fn = click.option(
        "--mirror/--no-mirror",
        default=True,
        show_default=True,
        help="Average each face's descriptor with its mirror image's (more accurate).",
    )(fn)
    fn = click.option(
        "--fallback/--no-fallback",
        default=True,
        show_default=True,
        help="When no face is found in a small image, retry with more upsampling, "
        "then the CNN detector.",
    )(fn)
    return click.option(
        "--jitters",
        type=click.IntRange(1, 100),
        default=1,
        show_default=True,
        help="Re-sample each face this many times and average (slower, slightly more accurate).",
    )(fn)


def cache_options(fn: F) -> F:
    fn = click.option(
        "--no-cache", is_flag=True, help="Neither read nor write the encoding cache."
    )(fn)
    return click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where to keep the encoding cache (default: the user cache folder, "
        "honouring XDG_CACHE_HOME).",
    )(fn)


def resolve_cache_dir(cache_dir: Path | None, no_cache: bool) -> Path | None:
    if no_cache:
        return None
    if cache_dir is not None:
        return cache_dir
    from facematch.cache import default_cache_dir

    return default_cache_dir()


def progress_bar(total: int, label: str, quiet: bool) -> Any:
    """A tqdm bar on stderr when it is a terminal and the run is not quiet."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=label,
        unit="img",
        file=sys.stderr,
        leave=False,
        disable=quiet or not sys.stderr.isatty(),
    )


@click.group(cls=DefaultGroup, epilog=EXIT_CODES_HELP, context_settings={"max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="facematch")
def main() -> None:
    """Match known people in unknown photos."""


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("known", type=click.Path(path_type=str))
@click.argument("unknown", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--tolerance",
    "-t",
    type=TOLERANCE,
    default="auto",
    show_default=True,
    help="Largest distance that still counts as a match; lower is stricter "
    "(0.5-0.55 for children, relatives and look-alikes). auto: 0.6 for small "
    "galleries, lower as the known folder grows, so strangers are rarely named; "
    "0.6 gives face_recognition's answers.",
)
@click.option("--show-distance", is_flag=True, help="compat format: append the distance.")
@click.option(
    "--all-matches", is_flag=True, help="List every person within tolerance, nearest first."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["compat", "csv", "json", "jsonl"]),
    default="compat",
    show_default=True,
    help="Output: face_recognition's lines, CSV, one JSON document, or JSON lines.",
)
@encoding_options
@detection_options(default_upsample=1)
@cache_options
def match(
    known: str,
    unknown: tuple[str, ...],
    tolerance: float | str,
    show_distance: bool,
    all_matches: bool,
    fmt: str,
    jitters: int,
    landmarks: str,
    mirror: bool,
    fallback: bool,
    engine: str | None,
    model: str,
    upsample: int,
    min_face_size: int | None,
    recursive: bool,
    jobs: int | None,
    cpus: int | None,
    quiet: bool,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Name the people of KNOWN in the faces of UNKNOWN images.

    KNOWN is a folder: each image directly inside is one person, named by its
    file name ("Barack Obama.jpg"); each subfolder is one person, named by the
    folder, with all of that person's photos inside. UNKNOWN is one or more
    images or folders (--recursive to descend).
    """
    setup_logging(quiet)
    from facematch import pipeline as pl
    from facematch.errors import FacematchError, UsageError
    from facematch.gallery import known_photos
    from facematch.images import discover
    from facematch.writers import make_writer

    settings = face_settings(
        model, upsample, min_face_size, int(landmarks), jitters, mirror, fallback
    )
    try:
        photos = known_photos(known)
        found = discover(unknown, recursive)
        if not found:
            raise UsageError(f"no images found in {', '.join(unknown)}")
        with pl.Pipeline(
            settings,
            jobs=jobs if jobs is not None else cpus,
            cache_dir=resolve_cache_dir(cache_dir, no_cache),
            engine=engine,  # type: ignore[arg-type]
        ) as run:
            with progress_bar(len(photos) + len(found), "faces", quiet) as bar:
                run.progress = bar.update
                known_people, encoded = pl.start(run, known, photos, found)
                unreadable = len(known_people.unreadable)
                chosen = choose_tolerance(tolerance, len(known_people.gallery.embeddings))
                writer = make_writer(fmt, sys.stdout, show_distance)
                results = pl.match(run, known_people, found, chosen, all_matches, encoded)
                for result in results:
                    if result.status == "error":
                        unreadable += 1
                        log.error("%s: %s", result.path, result.error)
                    writer.write(result)
            writer.close()
    except FacematchError as exc:
        fail_with(exc)
    if unreadable:
        sys.exit(EXIT_PARTIAL)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["compat", "csv", "json", "jsonl"]),
    default="compat",
    show_default=True,
    help="compat prints face_detection's path,top,right,bottom,left lines.",
)
@detection_options(default_upsample=0)
def detect(
    paths: tuple[str, ...],
    fmt: str,
    model: str,
    upsample: int,
    min_face_size: int | None,
    recursive: bool,
    jobs: int | None,
    cpus: int | None,
    quiet: bool,
) -> None:
    """Print the face boxes found in images, like face_recognition's face_detection."""
    setup_logging(quiet)
    from facematch import pipeline as pl
    from facematch.errors import FacematchError, UsageError
    from facematch.faces import DETECTOR_WINDOW
    from facematch.images import discover
    from facematch.writers import make_detect_writer

    # face_detection runs on the full image: the detector's own window is the smallest face.
    settings = face_settings(model, upsample, min_face_size or DETECTOR_WINDOW // 2**upsample)
    unreadable = 0
    try:
        found = discover(paths, recursive)
        if not found:
            raise UsageError(f"no images found in {', '.join(paths)}")
        writer = make_detect_writer(fmt, sys.stdout)
        with (
            progress_bar(len(found), "detect", quiet) as bar,
            pl.Pipeline(settings, jobs=jobs if jobs is not None else cpus) as run,
        ):
            run.progress = bar.update
            for result in pl.find_boxes(run, found):
                if result.status == "error":
                    unreadable += 1
                    log.error("%s: %s", result.path, result.error)
                writer.write(result)
        writer.close()
    except FacematchError as exc:
        fail_with(exc)
    if unreadable:
        sys.exit(EXIT_PARTIAL)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("labelled", type=click.Path(path_type=str))
@click.option(
    "--tolerance",
    "-t",
    type=TOLERANCE,
    default="auto",
    show_default=True,
    help="The tolerance to report accuracy and open-set figures at (auto: what "
    "matching would use against a gallery of this size).",
)
@click.option(
    "--target-far",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    metavar="RATE",
    help="Recommend the tolerance that keeps false accepts at this rate on these photos.",
)
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    metavar="FILE.png",
    help="Draw the ROC curve and distance histograms (needs facematch[plot]).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@encoding_options
@detection_options(default_upsample=1)
@cache_options
def evaluate(
    labelled: str,
    tolerance: float | str,
    target_far: float | None,
    plot_file: str | None,
    fmt: str,
    jitters: int,
    landmarks: str,
    mirror: bool,
    fallback: bool,
    engine: str | None,
    model: str,
    upsample: int,
    min_face_size: int | None,
    recursive: bool,
    jobs: int | None,
    cpus: int | None,
    quiet: bool,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Measure accuracy on a labelled set: a folder with a subfolder per person,
    or a pairs file (CSV file_x,file_y,same; paths relative to the file)."""
    setup_logging(quiet)
    import json

    from facematch import evaluate as ev
    from facematch import pipeline as pl
    from facematch.errors import FacematchError

    settings = face_settings(
        model, upsample, min_face_size, int(landmarks), jitters, mirror, fallback
    )
    try:
        labelled_set = ev.load_labelled(labelled)
        with (
            progress_bar(len(labelled_set.images), "encode", quiet) as bar,
            pl.Pipeline(
                settings,
                jobs=jobs if jobs is not None else cpus,
                cache_dir=resolve_cache_dir(cache_dir, no_cache),
                engine=engine,  # type: ignore[arg-type]
            ) as run,
        ):
            run.progress = bar.update
            report = ev.evaluate(run, labelled_set, tolerance, target_far)
        if plot_file is not None:
            ev.plot(report, plot_file)
    except FacematchError as exc:
        fail_with(exc)
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        click.echo(ev.render(report), nl=False)


@main.group()
def cache() -> None:
    """Inspect or clear the encoding cache."""


@cache.command("info")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def cache_info(cache_dir: Path | None) -> None:
    """Where the cache is, how many images it holds, and its size."""
    setup_logging(False)
    from facematch.cache import EncodingCache

    folder = resolve_cache_dir(cache_dir, False)
    assert folder is not None
    info = EncodingCache(folder).info()
    click.echo(f"path: {info['path']}")
    click.echo(f"images: {info['entries']}")
    click.echo(f"size: {info['bytes'] / 1e6:.1f} MB")


@cache.command("clear")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def cache_clear(cache_dir: Path | None) -> None:
    """Delete every cached encoding."""
    setup_logging(False)
    from facematch.cache import EncodingCache

    folder = resolve_cache_dir(cache_dir, False)
    assert folder is not None
    removed = EncodingCache(folder).clear()
    click.echo(f"removed {removed} cached images from {folder}")


def run(argv: Sequence[str] | None = None) -> int:
    """Entry point that also maps interrupts and closed pipes to exit statuses."""
    try:
        main.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("facematch: interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("facematch: interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return EXIT_OK


def entry() -> None:
    """The ``facematch`` console script."""
    sys.exit(run())
