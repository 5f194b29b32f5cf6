"""What every command shares: options, exit statuses, errors, logging and output.

Nothing here loads a model or imports dlib/numpy at import time, so
``facematch --help`` and ``--version`` return at once.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from facematch.errors import FacematchError, UsageError
from facematch.output.text import printable

if TYPE_CHECKING:
    from tqdm import tqdm

    from facematch.encode.faces import EngineName, FaceSettings
    from facematch.matching.gallery import KnownPhoto
    from facematch.output.pictures import Drawable, Pictures
    from facematch.output.writers import RowWriter
    from facematch.records import Encoded, EncodedVideo
    from facematch.run.pipeline import KnownPeople, Pipeline
    from facematch.sources.images import Found

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141
EXIT_TERMINATED = 143

EXIT_CODES_HELP = f"""\b
Exit status:
  {EXIT_OK}    every input was read (faces found or not)
  {EXIT_PARTIAL}    finished, but some inputs could not be read (see stderr)
  {EXIT_USAGE}    usage error: bad option, missing known folder, no images
  {EXIT_FATAL}    fatal error: no face in the known folder, output not writable
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_OUTPUT_CLOSED}  the output was closed early (e.g. piped to head)
  {EXIT_TERMINATED}  terminated (SIGTERM)"""

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


class OutputClosed(Exception):
    """Whoever reads our output stopped reading (``| head``): not an error of ours."""


class Terminated(BaseException):
    """SIGTERM arrived; a BaseException so that nothing on the way swallows it."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = printable(record.getMessage())
        click.echo(f"facematch: {record.levelname.lower()}: {message}", err=True)


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

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; the one place our errors become a message and an exit status."""
        try:
            return super().invoke(ctx)
        except FacematchError as exc:
            fail_with(exc)

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
    from facematch.matching import calibration

    if requested == "auto":
        return calibration.auto_tolerance(known_faces)
    assert isinstance(requested, float)
    rate = calibration.stranger_match_rate(requested, known_faces)
    if rate > calibration.WARN_RATE:
        auto = calibration.auto_tolerance(known_faces)
        log.warning(
            "with %d known faces, a stranger has about a %.0f%% chance of being within "
            "%g of someone; --tolerance auto (%g here, tighter where faces crowd) "
            "makes that about %.0f%% or less",
            known_faces,
            100 * rate,
            requested,
            auto,
            100 * calibration.stranger_match_rate(auto, known_faces),
        )
    return requested


def fail_with(error: Exception) -> NoReturn:
    """Turn one of our errors into a one-line message and its exit status."""
    raise (CliUsageError if isinstance(error, UsageError) else CliError)(str(error)) from None


def option_group(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply several click options as one decorator, in the order listed."""

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


jobs_option = click.option(
    "--jobs",
    "-j",
    type=int,
    default=None,
    metavar="N",
    help="Worker processes (default: all cores; -1 or 0 also mean all). Alias: --cpus.",
)
quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="No progress bar and no warnings; errors still show."
)

DETECTION_OPTIONS = (
    click.option(
        "--model",
        type=click.Choice(["hog", "cnn", "centerface"]),
        default="hog",
        show_default=True,
        help="Face detector: hog (dlib, fast, frontal faces of 40 px and up), cnn (dlib's "
        "MMOD, more accurate, slow without a GPU) or centerface (finds small and turned "
        "faces, fast; needs facematch[detector]).",
    ),
    click.option(
        "--min-face-size",
        type=click.IntRange(min=8),
        default=None,
        metavar="PX",
        help="Smallest face to find, in pixels of the original image; detection runs "
        "on a copy just large enough. Default: what face_recognition finds "
        "(40 px, or 2.5% of the long side of images over 1600 px).",
    ),
    jobs_option,
    click.option(
        "--cpus",
        "cpus",
        type=int,
        default=None,
        hidden=True,
        help="Alias of --jobs, as in face_recognition (-1 = all cores).",
    ),
    click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Run the work on a Dask cluster: a scheduler's address (tcp://host:8786), "
        "or local:N for N worker processes here; --jobs is then unused "
        "(needs facematch[dask]).",
    ),
    quiet_option,
)

fallback_option = click.option(
    "--fallback/--no-fallback",
    default=True,
    show_default=True,
    help="When no face is found in a small image, retry with more upsampling, "
    "then the CNN detector.",
)

ENCODING_OPTIONS = (
    click.option(
        "--jitters",
        type=click.IntRange(1, 100),
        default=1,
        show_default=True,
        help="Re-sample each face this many times and average (slower, slightly more accurate).",
    ),
    click.option(
        "--landmarks",
        type=click.Choice(["5", "68"]),
        default="68",
        show_default=True,
        help="Landmark model used to align faces (face_recognition used 5).",
    ),
    click.option(
        "--mirror/--no-mirror",
        default=True,
        show_default=True,
        help="Average each face's descriptor with its mirror image's (more accurate).",
    ),
    fallback_option,
    click.option(
        "--engine",
        type=click.Choice(["onnx", "dlib"]),
        default=None,
        help="Descriptor engine: onnx (default when onnxruntime is installed; same "
        "numbers, much faster) or dlib.",
    ),
    click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where to keep the encoding cache (default: the user cache folder, "
        "honouring XDG_CACHE_HOME).",
    ),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the encoding cache."),
)

recursive_option = click.option(
    "--recursive", "-r", is_flag=True, help="Descend into subfolders of the folders given."
)


def tolerance_option(help_text: str, default: float | str = "auto") -> Callable[[F], F]:
    """``-t, --tolerance FLOAT|auto``, worded for the command that takes it."""
    return click.option(
        "--tolerance",
        "-t",
        type=TOLERANCE,
        default=default,
        show_default=True,
        help=help_text,
    )


def format_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["compat", "csv", "json", "jsonl"]),
        default="compat",
        show_default=True,
        help=help_text,
    )


@dataclass(frozen=True)
class RunOptions:
    """The options every image command shares, parsed once."""

    settings: FaceSettings  # imported when a command runs (--help stays light)
    jobs: int | None
    quiet: bool
    cache_dir: Path | None = None
    engine: EngineName | None = None
    scheduler: str | None = None

    def pipeline(self, **hooks: Any) -> Pipeline:
        """The ``Pipeline`` of these options; ``hooks``: its progress and video arguments."""
        from facematch.run.pipeline import Pipeline

        return Pipeline(
            self.settings,
            jobs=self.jobs,
            cache_dir=self.cache_dir,
            engine=self.engine,
            runner="process" if self.scheduler is None else f"dask:{self.scheduler}",
            **hooks,
        )


# A Dask scheduler's address: [scheme://]host:port (Dask's own default scheme is tcp).
SCHEDULER_ADDRESS = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})/?"
)
SCHEDULER_SCHEMES = frozenset({"tcp", "tls", "ws", "wss", "ucx"})


def check_scheduler(scheduler: str | None) -> str | None:
    """``--scheduler``, checked before any work, so that a run the cache answers
    whole still fails on it: the extra is installed, ``local:N`` is well formed, an
    address is one (a usage error), and its scheduler answers (a fatal error, as
    when the Dask path cannot reach it)."""
    if scheduler is None:
        return None
    from facematch.run import dask as dask_runner

    try:
        dask_runner.require_dask()
        if dask_runner.parse_local(scheduler) is not None:
            return scheduler
    except UsageError as exc:
        raise CliUsageError(str(exc)) from None
    host, port, scheme = _scheduler_address(scheduler)
    if scheme != "ucx":  # UCX does not listen on a TCP socket to knock on
        try:
            socket.create_connection((host, port), timeout=dask_runner.CONNECT_TIMEOUT).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise CliError(f"cannot reach the Dask scheduler at {scheduler}: {reason}") from None
    return scheduler


def _scheduler_address(scheduler: str) -> tuple[str, int, str]:
    """(host, port, scheme) of a scheduler's address; a usage error if it is not one."""
    matched = SCHEDULER_ADDRESS.fullmatch(scheduler.strip())
    scheme = (matched["scheme"] or "tcp").lower() if matched else ""
    port = int(matched["port"]) if matched else 0
    if matched is None or scheme not in SCHEDULER_SCHEMES or not 0 < port < 65536:
        raise CliUsageError(
            f"--scheduler takes a Dask scheduler's address (tcp://HOST:PORT, e.g. "
            f"tcp://10.0.0.1:8786) or local:N, not '{printable(scheduler)}'"
        )
    return matched["host"].strip("[]"), port, scheme


def _run_options(options: dict[str, Any], encoding: bool) -> RunOptions:
    """Take the shared options out of a command's keyword arguments."""
    from facematch.encode.faces import FaceSettings

    jobs, cpus = options.pop("jobs"), options.pop("cpus")
    detection = {key: options.pop(key) for key in ("model", "upsample", "min_face_size")}
    quiet = options.pop("quiet")
    scheduler = check_scheduler(options.pop("scheduler"))
    if not encoding:  # finding faces only (detect): matching's detection, fallback included
        return RunOptions(
            FaceSettings(**detection, fallback=options.pop("fallback")),
            jobs if jobs is not None else cpus,
            quiet,
            scheduler=scheduler,
        )
    settings = FaceSettings(
        **detection,
        landmarks=int(options.pop("landmarks")),
        jitters=options.pop("jitters"),
        mirror=options.pop("mirror"),
        fallback=options.pop("fallback"),
    )
    cache_dir, no_cache = options.pop("cache_dir"), options.pop("no_cache")
    return RunOptions(
        settings,
        jobs if jobs is not None else cpus,
        quiet,
        None if no_cache else resolve_cache_dir(cache_dir),
        options.pop("engine"),
        scheduler,
    )


# Options naming a folder that pictures or copies are written into.
OUTPUT_FOLDERS = {"out_dir": "--out", "annotate": "--annotate", "report_assets": "--report-assets"}


def check_output_folders(ctx: click.Context) -> None:
    """Refuse (usage error) a folder of pictures or copies that is an input folder or
    inside one: KNOWN, ``--known``, or any folder given as an argument. A report's
    crops may be written beside the page, so ``--report`` counts too.

    The one place of that rule, for every command that writes pictures or copies
    (``image_command`` calls it, and ``cloak``).
    """
    outputs = [(option, ctx.params.get(name)) for name, option in OUTPUT_FOLDERS.items()]
    report = ctx.params.get("report")
    if not any(folder for _, folder in outputs) and report is None:
        return
    from facematch.output.pictures import refuse_output_in_inputs
    from facematch.output.report import default_assets

    if report is not None and ctx.params.get("report_assets") is None:
        outputs.append((f"--report {report}: its crops folder", default_assets(report)))
    folders: list[str] = []
    for param in ctx.command.params:
        if isinstance(param, click.Argument) or param.name == "known_dir":
            value = ctx.params.get(param.name or "")
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, str) and os.path.isdir(item):
                    folders.append(item)
    for option, folder in outputs:
        if folder is not None:
            refuse_output_in_inputs(option, Path(folder), folders)


def image_command(*, default_upsample: int, encoding: bool = True) -> Callable[[F], F]:
    """The shared options of a command that reads images, handed to it as ``shared``.

    The command also gets stderr logging set up (``DefaultGroup.invoke`` turns our
    errors into a one-line message and exit status).
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def command(**options: Any) -> Any:
            shared = _run_options(options, encoding)
            setup_logging(shared.quiet)
            check_output_folders(click.get_current_context())
            from facematch.detect.detectors import require

            require(shared.settings.model)
            return fn(shared=shared, **options)

        upsample = click.option(
            "--upsample",
            type=click.IntRange(0, 4),
            default=default_upsample,
            show_default=True,
            help="Times the detector upsamples the image (finds smaller faces, slower).",
        )
        extra = ENCODING_OPTIONS if encoding else (fallback_option,)
        return option_group(*extra, *DETECTION_OPTIONS, upsample)(command)  # type: ignore[no-any-return]

    return decorate


def resolve_cache_dir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return cache_dir
    from facematch.store.cache import default_cache_dir

    return default_cache_dir()


def progress_bar(
    total: int, label: str, quiet: bool, unit: str = "img", position: int | None = None
) -> tqdm[Any]:
    """A tqdm bar on stderr when it is a terminal and the run is not quiet."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=label,
        unit=unit,
        file=sys.stderr,
        leave=False,
        position=position,
        disable=quiet or not sys.stderr.isatty(),
    )


def find_inputs(
    inputs: Sequence[str], recursive: bool, videos: bool = False, *, can_recurse: bool = True
) -> list[Found]:
    """The images (and videos) named on the command line; none at all is a usage error.

    The error says why a folder gave nothing when it can: its photos are in
    subfolders (and ``-r`` would read them; ``can_recurse=False``: the command
    has no ``-r``), or it holds videos, which only matching reads.
    """
    from facematch.sources.images import discover

    if not any(os.path.lexists(item) for item in inputs):
        raise UsageError(f"no such file or directory: {', '.join(inputs)}")
    found = discover(inputs, recursive, videos)
    if not found:
        notes = [
            note
            for item in inputs
            for note in _why_empty(
                item, "it" if len(inputs) == 1 else item, recursive, videos, can_recurse
            )
        ]
        why = f" ({'; '.join(notes)})" if notes else ""
        raise UsageError(f"no images found in {', '.join(inputs)}{why}")
    return found


def _why_empty(
    folder: str, name: str, recursive: bool, videos: bool, can_recurse: bool
) -> list[str]:
    """What a folder that gave no input holds instead: subfolders not searched, videos."""
    from facematch.sources.images import is_video_name, visible_entries

    try:
        entries = visible_entries(folder) if os.path.isdir(folder) else []
    except OSError:
        return []
    notes = []
    if not recursive and any(_is_folder(entry) for entry in entries):
        hint = "use -r/--recursive" if can_recurse else "they are not searched"
        notes.append(f"{name} has subfolders: {hint}")
    if not videos and any(is_video_name(entry.name) for entry in entries):
        notes.append(f"{name} has videos, which only matching reads")
    return notes


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Turn a failed write to stdout into a one-line error, or OutputClosed for a closed pipe."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise OutputClosed from None
        raise CliError(f"cannot write the output: {exc.strerror or exc}") from None


def write_all(results: Iterable[Any], writer: RowWriter[Any]) -> int:
    """Write every result; report each unreadable input on stderr and count them."""
    unreadable = 0
    with writing():
        for result in results:
            if result.status == "error":
                unreadable += 1
                log.error("%s: %s", result.path, result.error)
            writer.write(result)
        writer.close()
    return unreadable


def library_option_for(help_text: str) -> Callable[[F], F]:
    """``--library FILE``, worded for the command that takes it."""
    return click.option(
        "--library",
        "library_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="FILE",
        help=help_text,
    )


library_option = library_option_for(
    "The face library file (default: $FACEMATCH_LIBRARY, else library.sqlite3 in "
    "the user data folder)."
)


@dataclass(frozen=True)
class PictureOptions:
    """``--annotate``, ``--font``, ``--report`` and ``--report-assets``, as asked."""

    annotate: Path | None = None
    font: str | None = None
    report: Path | None = None
    report_assets: Path | None = None

    def check(self, inputs: Sequence[str], protected: Sequence[str] = ()) -> None:
        """Refuse, before any work, a copy or page over an input, or a bad font."""
        from facematch.output.pictures import check_font, output_paths, refuse_overwrites

        if self.report_assets is not None and self.report is None:
            raise UsageError("--report-assets needs --report FILE.html")
        check_font(self.font)
        originals = [*inputs, *protected]
        if self.annotate is not None:
            refuse_overwrites("--annotate", output_paths(inputs, self.annotate).values(), originals)
        if self.report is not None:
            refuse_overwrites("--report", [self.report], originals)

    def writer(self, inputs: Sequence[str], tolerance: float | None) -> Pictures | None:
        """A writer of the pictures asked for, or None."""
        from facematch.output.pictures import AnnotatedCopies, Annotations, Pictures, output_paths
        from facematch.output.report import Report

        drawables: list[Drawable] = []
        if self.annotate is not None:
            annotations = Annotations(tolerance, self.font)
            drawables.append(AnnotatedCopies(output_paths(inputs, self.annotate), annotations))
        if self.report is not None:
            drawables.append(Report(self.report, tolerance, self.report_assets))
        return Pictures(drawables) if drawables else None


ANNOTATE_OPTIONS = (
    click.option(
        "--annotate",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        metavar="DIR",
        help="Write an upright copy of every readable image into DIR (same relative "
        "path) with each face boxed and labelled (match, for a video: the frame of "
        "each range's best sample, VIDEO@HH-MM-SS.mmm_PERSON.jpg); never over an input.",
    ),
    click.option(
        "--font",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        metavar="FILE",
        help="TrueType/OpenType font for the labels (default: Pillow's own, Latin only).",
    ),
)

MATCH_REPORT_HELP = (
    "Write a self-contained HTML page to check the answers by eye: each face "
    "beside the known photo it matched, a summary, a filter by person."
)


def report_options(help_text: str = MATCH_REPORT_HELP) -> tuple[Callable[[F], F], ...]:
    """``--report FILE.html`` (what the page shows: ``help_text``) and ``--report-assets``."""
    return (
        click.option(
            "--report",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            metavar="FILE.html",
            help=help_text,
        ),
        click.option(
            "--report-assets",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            metavar="DIR",
            help="Write the report's crops as files in DIR instead of inside the page "
            "(done anyway, beside the page, past 20 MB of crops).",
        ),
    )


def picture_options(
    report: bool = True, annotate: bool = True, report_help: str = MATCH_REPORT_HELP
) -> Callable[[F], F]:
    """``--annotate``, ``--font`` and/or ``--report``, ``--report-assets`` as ``pictures``."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def command(**options: Any) -> Any:
            keys = ("annotate", "font", "report", "report_assets")
            pictures = PictureOptions(**{k: options.pop(k) for k in keys if k in options})
            return fn(pictures=pictures, **options)

        chosen = [*(ANNOTATE_OPTIONS if annotate else ())]
        chosen += report_options(report_help) if report else ()
        return option_group(*chosen)(command)  # type: ignore[no-any-return]

    return decorate


known_from_xmp_option = click.option(
    "--known-from-xmp",
    "known_from_xmp",
    multiple=True,
    metavar="PATH",
    type=click.Path(path_type=str),
    help="Take the known people from the named face regions in the XMP of the photos "
    "under PATH (sidecars or the photos' own; MWG, Microsoft and ACDSee regions, as "
    "photo managers and facematch tag write them) instead of a known folder; repeatable.",
)

xmp_names_option = click.option(
    "--xmp-names/--no-xmp-names",
    "xmp_names",
    default=True,
    help="Name the faces inside the named face regions of the photos' XMP (sidecars or "
    "the photos' own, as photo managers and facematch tag write them; on by default): "
    "each goes to the person of that name, whom clustering starts from and search "
    "names. A photo's XMP is read again only when it or its sidecars change.",
)


@dataclass(frozen=True)
class Known:
    """Where the known people come from: a KNOWN folder, or the face regions of the
    photos under ``--known-from-xmp``."""

    folder: str | None
    tagged: tuple[str, ...] = ()

    @classmethod
    def split(
        cls, first: str | None, rest: tuple[str, ...], tagged: tuple[str, ...]
    ) -> tuple[Known, tuple[str, ...]]:
        """The known people and the photos to name, from the arguments: with
        ``--known-from-xmp`` every argument is a photo to name, else the first is KNOWN."""
        if tagged:
            return cls(None, tagged), (first, *rest) if first is not None else rest
        if first is None:
            raise UsageError("missing KNOWN: a folder of known people (or --known-from-xmp PATH)")
        return cls(first), rest

    def photos(self) -> list[KnownPhoto]:
        """The known folder's photos (none for regions: their photos are not copied over)."""
        from facematch.matching.gallery import known_photos

        return [] if self.folder is None else known_photos(self.folder)

    def people(self, pipeline: Pipeline, photos: Sequence[KnownPhoto]) -> KnownPeople:
        """The gallery: the known folder's photos encoded, or the regions' faces."""
        from facematch.run.pipeline import build_gallery
        from facematch.run.regions import known_from_regions

        if self.folder is None:
            return known_from_regions(pipeline, self.tagged)
        return build_gallery(pipeline, self.folder, photos)

    def start(
        self, pipeline: Pipeline, photos: Sequence[KnownPhoto], unknown: Sequence[Found]
    ) -> tuple[KnownPeople, Iterator[Encoded | EncodedVideo] | None]:
        """The gallery, and the unknown inputs' encodings when they run in one stream
        with the known folder's (``run.pipeline.start``); None: ``match`` encodes them."""
        from facematch.run.pipeline import start

        if self.folder is None:
            return self.people(pipeline, photos), None
        return start(pipeline, self.folder, photos, unknown)
