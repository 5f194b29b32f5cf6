"""``facematch evaluate``: accuracy on a labelled set."""

from __future__ import annotations

import sys

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    RunOptions,
    image_command,
    progress_bar,
    tolerance_option,
    writing,
)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("labelled", type=click.Path(path_type=str))
@tolerance_option(
    "The tolerance to report accuracy and open-set figures at (auto: what "
    "matching would use against a gallery of this size)."
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
    "--strangers",
    "strangers_dir",
    type=click.Path(exists=True, file_okay=False, path_type=str),
    default=None,
    metavar="DIR",
    help="A folder of photos of one-photo strangers (each file a person of its own), "
    "added to the clustering figures of a folder-per-person set.",
)
@click.option(
    "--descriptor",
    type=click.Choice(["dlib", "sface"]),
    default="dlib",
    show_default=True,
    help="The model to measure: dlib's (what matching uses), or SFace, the second model "
    "facematch cloak checks its copies against (needs facematch[cloak]; same faces and "
    "landmarks, its own alignment; tolerance auto is the cloak check's).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@image_command(default_upsample=1)
def evaluate(
    labelled: str,
    tolerance: float | str,
    target_far: float | None,
    plot_file: str | None,
    strangers_dir: str | None,
    descriptor: str,
    fmt: str,
    shared: RunOptions,
) -> None:
    """Measure accuracy on a labelled set: a folder with a subfolder per person,
    or a pairs file (CSV file_x,file_y,same; paths relative to the file).

    A folder also gets clustering figures (facematch cluster's grouping of the photos
    against their folders), with --strangers photos as people of their own."""
    import json

    from facematch.evaluate import evaluation as ev
    from facematch.sources.images import iter_folder

    labelled_set = ev.load_labelled(labelled)
    strangers: list[str] = []
    if strangers_dir is not None:
        for found in iter_folder(strangers_dir, recursive=True):
            if found.problem is None:
                strangers.append(found.path)
            else:
                labelled_set = ev.LabelledSet(
                    labelled_set.source,
                    labelled_set.images,
                    labelled_set.people,
                    labelled_set.pairs,
                    (*labelled_set.problems, (found.path, found.problem)),
                )
    with (
        shared.pipeline() as pipeline,
        progress_bar(len(labelled_set.images) + len(strangers), "encode", shared.quiet) as bar,
    ):
        pipeline.progress = bar.update
        report = ev.evaluate(
            pipeline,
            labelled_set,
            tolerance,
            target_far,
            strangers,
            descriptor,  # type: ignore[arg-type]
        )
    if plot_file is not None:
        ev.plot(report, plot_file)
    with writing():
        if fmt == "json":
            click.echo(json.dumps(report.as_json(), indent=2))
        else:
            click.echo(ev.render(report), nl=False)
        sys.stdout.flush()
    if report.unreadable:
        sys.exit(EXIT_PARTIAL)
