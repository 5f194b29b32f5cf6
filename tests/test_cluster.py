"""Clustering: the algorithm on exact cases, the metrics by hand, the command on real faces."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from helpers import run

from facematch.evaluate.metrics import clustering_scores
from facematch.matching.cluster import FaceClusterer, neighbour_graph

DATA = Path(__file__).parent / "data"


def blobs(sizes: list[int], seed: int = 0, spread: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """People as tight blobs about 1 apart in 128-d; returns embeddings and true person."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), 128))
    centres *= 0.75 / np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    noise = rng.normal(scale=spread / np.sqrt(128), size=(len(truth), 128))
    return centres[truth] + noise, truth


# --- metrics, against hand computation ---------------------------------------------


def test_clustering_scores_by_hand() -> None:
    # truth: A A A B B ; groups: {A A} {A B} {B unclustered}
    truth = ["A", "A", "A", "B", "B"]
    labels = [0, 0, 1, 1, -1]
    s = clustering_scores(truth, labels)
    # BCubed precision: 1, 1, 1/2, 1/2, 1 -> 4/5; recall: 2/3, 2/3, 1/3, 1/2, 1/2 -> 8/15
    assert s.bcubed_precision == pytest.approx(4 / 5)
    assert s.bcubed_recall == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 / 2 + 1 / 2) / 5)
    # pairs in groups: (0,1) same, (2,3) different -> P 1/2; same pairs: 3 + 1 = 4 -> R 1/4
    assert s.pairwise_precision == pytest.approx(1 / 2)
    assert s.pairwise_recall == pytest.approx(1 / 4)
    assert s.pairwise_f == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert (s.groups, s.unclustered, s.people) == (2, 1, 2)
    assert s.mixed_groups == 1 and s.mixed_share == pytest.approx(0.5)
    assert s.split_people == 1  # A is in groups 0 and 1; B's other face is unclustered


def test_clustering_scores_perfect_and_all_unclustered() -> None:
    perfect = clustering_scores([1, 1, 2, 3], [5, 5, -1, -1])
    assert perfect.bcubed_f == 1.0 and perfect.pairwise_f == 1.0
    nothing = clustering_scores([1, 1, 2], [-1, -1, -1])
    assert nothing.bcubed_precision == 1.0
    assert nothing.bcubed_recall == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert nothing.pairwise_precision == 1.0 and nothing.pairwise_recall == 0.0


# --- the algorithm --------------------------------------------------------------------


def test_graph_holds_exactly_the_pairs_within_the_radius() -> None:
    x, _ = blobs([4, 3, 5], spread=0.4)
    graph = neighbour_graph(x, 0.5, 0)
    full = np.linalg.norm(x[:, None] - x[None], axis=2)
    i, j = np.nonzero(np.triu(full <= 0.5, k=1))
    assert sorted(zip(graph.first.tolist(), graph.second.tolist(), strict=True)) == sorted(
        zip(i.tolist(), j.tolist(), strict=True)
    )
    np.testing.assert_allclose(graph.distance, full[graph.first, graph.second], atol=1e-5)


def test_blobs_are_found_and_singletons_are_unclustered() -> None:
    x, _ = blobs([6, 4, 3, 1, 1])
    labels = FaceClusterer().fit_predict(x)
    assert labels.tolist() == [0] * 6 + [1] * 4 + [2] * 3 + [-1, -1]


def test_min_faces_dissolves_small_groups_never_forces_them() -> None:
    x, _ = blobs([5, 2])
    labels = FaceClusterer(min_faces=3).fit_predict(x)
    assert labels.tolist() == [0] * 5 + [-1, -1]


def test_a_pair_needs_closer_faces_than_a_larger_group_unless_seeded() -> None:
    rng = np.random.default_rng(5)
    centre = rng.normal(size=128)
    centre /= np.linalg.norm(centre)
    step = rng.normal(size=128)
    step -= step @ centre * centre
    step /= np.linalg.norm(step)
    pair = np.array([centre, centre + 0.5 * step])  # 0.50 apart: within 0.53, past 0.46
    assert FaceClusterer().fit_predict(pair).tolist() == [-1, -1]
    assert FaceClusterer(pair_threshold=0.6).fit_predict(pair).tolist() == [0, 0]
    assert FaceClusterer().fit_predict(pair, seeds=[3, 3]).tolist() == [0, 0]
    close = np.array([centre, centre + 0.4 * step])
    assert FaceClusterer().fit_predict(close).tolist() == [0, 0]
    # A third face makes the same two a group of three: the pair rule is for pairs.
    trio = np.vstack([pair, centre + 0.25 * step])
    assert FaceClusterer().fit_predict(trio).tolist() == [0, 0, 0]


def test_two_strangers_in_a_folder_are_not_made_a_person(data: Path, tmp_path: Path) -> None:
    """Real LFW photos: Alberta Lee and Gong Ruina are 0.485 apart (within the 0.53
    threshold); Bernardo Segura's two photos 0.42."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in (
        "Alberta_Lee_0001.jpg",
        "Gong_Ruina_0001.jpg",
        "Bernardo_Segura_0001.jpg",
        "Bernardo_Segura_0002.jpg",
    ):
        shutil.copy(data / "lfw" / name, photos / name)
    library = tmp_path / "lib.sqlite3"
    result = run("cluster", photos, "--library", library, "--format", "csv", "-j", "1")
    assert result.exit_code == 0, result.stderr
    rows = [r for r in csv.DictReader(io.StringIO(result.stdout)) if r["face"] == "0"]
    person = {Path(r["path"]).name: r["person"] for r in rows}
    assert person["Alberta_Lee_0001.jpg"] == person["Gong_Ruina_0001.jpg"] == ""
    assert person["Bernardo_Segura_0001.jpg"] == person["Bernardo_Segura_0002.jpg"] != ""
    assert "1 people (1 new, 0 named)" in result.stderr


def test_two_faces_of_one_photo_never_share_a_group() -> None:
    x, _ = blobs([4])
    photos = ["a", "a", "b", "c"]  # faces 0 and 1 are in one photo
    labels = FaceClusterer().fit_predict(x, photos=photos)
    assert labels[0] != labels[1] or labels[0] == -1
    assert (labels >= 0).sum() == 3


def test_same_labels_whatever_the_input_order() -> None:
    x, _ = blobs([5, 4, 4, 3, 2, 1, 1], seed=3, spread=0.35)
    keys = [f"digest{i:03d}#0" for i in range(len(x))]
    base = FaceClusterer().fit_predict(x, photos=keys, keys=keys)
    rng = np.random.default_rng(1)
    for _ in range(3):
        perm = rng.permutation(len(x))
        shuffled = FaceClusterer().fit_predict(
            x[perm], photos=[keys[i] for i in perm], keys=[keys[i] for i in perm]
        )
        assert shuffled.tolist() == base[perm].tolist()


def test_seeds_keep_their_faces_and_never_merge() -> None:
    x, _ = blobs([4, 4])
    # The user split person 0 in two (seeds 7 and 8); new face 3 joins one of them.
    seeds = np.array([7, 7, 8, -1, -1, -1, -1, -1])
    labels = FaceClusterer(min_faces=2).fit_predict(x, seeds=seeds)
    assert labels[0] == labels[1] != labels[2]
    assert labels[3] in (labels[0], labels[2])
    assert len(set(labels[4:].tolist())) == 1 and labels[4] not in labels[:4]


def test_an_update_with_ten_percent_new_faces_keeps_people_and_quality() -> None:
    rng = np.random.default_rng(5)
    sizes = [int(v) for v in rng.integers(1, 8, 300)]
    x, truth = blobs(sizes, seed=5, spread=0.33)
    order = rng.permutation(len(x))
    old, new = order[: len(x) * 10 // 11], order[len(x) * 10 // 11 :]
    before = FaceClusterer().fit_predict(x[old])
    both = np.concatenate([old, new])
    seeds = np.concatenate([before, np.full(len(new), -1)])
    # As the command does it: only the new faces look for neighbours.
    searched = np.arange(len(both)) < len(old)
    after = FaceClusterer().fit_predict(x[both], seeds=seeds, searched=searched)
    scratch = FaceClusterer().fit_predict(x[both])
    grouped = before >= 0
    pairs = set(zip(before[grouped].tolist(), after[: len(old)][grouped].tolist(), strict=True))
    assert len(pairs) == len(set(before[grouped].tolist()))  # every old group is one group
    assert len({a for _, a in pairs}) == len(pairs)  # and no two merged
    assert (after[: len(old)][grouped] >= 0).all()
    update_f = clustering_scores(truth[both], after).bcubed_f
    scratch_f = clustering_scores(truth[both], scratch).bcubed_f
    assert scratch_f > 0.9  # a set where the question means something
    assert update_f >= scratch_f - 0.01


@pytest.mark.slow  # trains two inverted-file indexes: about 6 s
def test_the_index_built_graph_is_the_exact_graph_where_it_finds_every_pair() -> None:
    """10,200 faces (past FaissIndex's training size): the inverted-file index finds
    every pair of these tight people, so the graph and the groups are the exact ones,
    from scratch and for an update that searches only the new faces."""
    pytest.importorskip("faiss")
    rng = np.random.default_rng(7)
    sizes = [int(v) for v in rng.integers(1, 8, 2600)]
    x, truth = blobs(sizes, seed=7, spread=0.3)
    x, truth = x[:10_200].astype(np.float32), truth[:10_200]
    exact = neighbour_graph(x, 0.6, 64, approximate=False)
    built = neighbour_graph(x, 0.6, 64, approximate=True)
    assert len(exact) > 10_000
    assert np.array_equal(built.first, exact.first) and np.array_equal(built.second, exact.second)
    assert np.allclose(built.distance, exact.distance, atol=1e-6)
    new = np.arange(9_200, 10_200)
    exact = neighbour_graph(x, 0.6, 64, queries=new, approximate=False)
    built = neighbour_graph(x, 0.6, 64, queries=new, approximate=True)
    assert np.array_equal(built.first, exact.first) and np.array_equal(built.second, exact.second)
    labels = FaceClusterer(approximate=True).fit_predict(x)
    assert np.array_equal(labels, FaceClusterer(approximate=False).fit_predict(x))
    assert clustering_scores(truth, labels).bcubed_f > 0.95


def test_a_given_index_builds_the_graph_in_the_clusterers_own_order() -> None:
    """Cells trained elsewhere (a library's, keyed by ids unrelated to the rows'
    order), over faces the clusterer sorts by yet another key: the groups are the
    exact graph's, and the given index is what was searched."""
    pytest.importorskip("faiss")
    from facematch.neighbours.faiss_index import FaissIndex, fill_cells, trained_cells

    rng = np.random.default_rng(8)
    x, truth = blobs([int(v) for v in rng.integers(1, 8, 1000)], seed=8, spread=0.3)
    x, truth = np.ascontiguousarray(x[:4000], dtype=np.float32), truth[:4000]
    ids = rng.permutation(4000).astype(np.int64) * 5 + 1
    cells = trained_cells(x)
    fill_cells(cells, x, ids)
    keyed = FaissIndex.keyed(x, cells, ids)
    asked: list[int] = []

    class Counting:
        def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            asked.append(len(queries))
            return keyed.search(queries, k)

    order = [f"{v:05d}" for v in rng.permutation(4000)]
    got = FaceClusterer(approximate=True).fit_predict(x, keys=order, index=Counting())
    assert sum(asked) == 4000  # every face searched the given index once
    want = FaceClusterer(approximate=False).fit_predict(x, keys=order)
    assert np.array_equal(got, want)
    assert clustering_scores(truth, got).bcubed_f > 0.95
    FaceClusterer(approximate=True).fit_predict(x, keys=order, index=keyed)
    assert (keyed.probe_share, keyed.candidates) == (0.25, 8)  # the graph's settings


def test_an_update_searches_only_new_faces_and_they_bring_in_lone_old_ones() -> None:
    x, _ = blobs([3, 3, 1, 1])  # faces 6 and 7: one photo each of two more people
    before = np.array([0, 0, 0, 1, 1, 1, -1, -1])  # an earlier run: 6 and 7 in no group
    both = np.concatenate([x, x[[6, 7]] + 0.01])  # new photos of 6's and 7's people
    seeds = np.concatenate([before, [-1, -1]])
    searched = np.arange(10) < 8
    labels = FaceClusterer().fit_predict(both, seeds=seeds, searched=searched)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4] == labels[5]
    assert labels[6] == labels[8] >= 0 and labels[7] == labels[9] >= 0
    assert labels[6] != labels[7] and labels[6] not in labels[:6]
    # Only pairs with a new face were searched: two old lone faces of one person stay
    # apart without a new face between them (an earlier run found no group there).
    twins = np.concatenate([x[:6], x[[6, 6]] + [[0.0], [0.005]]])
    old_only = FaceClusterer().fit_predict(twins, seeds=before, searched=np.ones(8, dtype=bool))
    assert (old_only[6:] == -1).all()
    assert FaceClusterer().fit_predict(twins, seeds=before)[6] >= 0  # searched when not told


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="radius"):
        FaceClusterer(threshold=0.7, radius=0.6).fit(np.zeros((2, 128)))
    with pytest.raises(ValueError, match="min_faces"):
        FaceClusterer(min_faces=0).fit(np.zeros((2, 128)))
    for wrong in ({"keys": ["a"]}, {"seeds": [-1]}, {"photos": ["a"]}, {"searched": [True]}):
        with pytest.raises(ValueError, match="one"):
            FaceClusterer().fit(np.zeros((2, 128)), **wrong)  # type: ignore[arg-type]


# --- the command on real faces -----------------------------------------------------------


def rows_of(result: Result) -> list[dict[str, str]]:
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


@pytest.fixture(scope="module")
def tbbt_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The 8 tbbt people (5 crops each) copied and clustered once into a library."""
    root = tmp_path_factory.mktemp("cluster")
    photos = root / "photos"
    shutil.copytree(DATA / "people" / "tbbt", photos / "tbbt")
    library = root / "lib.sqlite3"
    return photos, library


def by_person(rows: list[dict[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in rows:
        out.setdefault(row["person"], set()).add(Path(row["path"]).parent.name)
    return out


def test_tbbt_clusters_into_its_eight_people(
    tbbt_library: tuple[Path, Path], tmp_path: Path
) -> None:
    photos, library = tbbt_library
    rows = rows_of(run("cluster", photos, "--library", library, "--format", "csv", "-q", "-j1"))
    assert len(rows) == 40
    groups = by_person(rows)
    assert "" not in groups  # nobody unclustered
    assert sorted(len(people) for people in groups.values()) == [1] * 8  # no mixing
    assert len({next(iter(p)) for p in groups.values()}) == 8  # nobody split
    assert {r["named_by"] for r in rows} == {"none"}
    # A re-run changes nothing, and --out writes a folder per person of crops.
    again = rows_of(
        run(
            "cluster",
            photos,
            "--library",
            library,
            "--format",
            "csv",
            "-q",
            "-j1",
            "--out",
            tmp_path / "o",
        )
    )
    assert again == rows
    folders = sorted(p.name for p in (tmp_path / "o").iterdir() if p.is_dir())
    assert folders == sorted(groups)
    crops = list((tmp_path / "o").rglob("*.jpg"))
    assert len(crops) == 40 and all("__face0.jpg" in c.name for c in crops)


def test_naming_merge_and_move_survive_new_photos(tbbt_library: tuple[Path, Path]) -> None:
    photos, library = tbbt_library
    rows = rows_of(run("cluster", photos, "--library", library, "--format", "csv", "-q", "-j1"))
    person = {Path(r["path"]).parent.name: r["person"] for r in rows}
    assert run("cluster", "name", person["penny"], "Penny", "--library", library).exit_code == 0
    merged = run("cluster", "merge", person["raj"], person["howard"], "--library", library)
    assert merged.exit_code == 0
    moved_photo = photos / "tbbt" / "amy" / "amy1.png"
    moved = run("cluster", "move", moved_photo, "--library", library)
    assert moved.exit_code == 0, moved.output
    # New photos arrive: the scenes, with several of these people in each.
    shutil.copytree(DATA / "scenes", photos / "scenes")
    rows = rows_of(run("cluster", photos, "--library", library, "--format", "csv", "-q", "-j1"))
    old = [r for r in rows if "/tbbt/" in r["path"]]
    names = {Path(r["path"]).parent.name: (r["name"], r["named_by"]) for r in old}
    assert names["penny"] == ("Penny", "user")
    assert {r["person"] for r in old if Path(r["path"]).parent.name in ("raj", "howard")} == {
        person["howard"]
    }
    amy1 = next(r for r in old if r["path"].endswith("amy1.png"))
    assert amy1["person"] == ""
    for row in old:  # everybody else kept their number
        who = Path(row["path"]).parent.name
        if who not in ("raj", "howard") and row is not amy1:
            assert row["person"] == person[who]
    # Scenes: no group holds two faces of one photo.
    scene_rows = [r for r in rows if "/scenes/" in r["path"] and r["person"]]
    seen = [(r["path"], r["person"]) for r in scene_rows]
    assert len(seen) == len(set(seen))
    # Penny's name follows her into the group photos she is in.
    assert any(r["name"] == "Penny" for r in scene_rows)
    # A known folder names the group it confidently matches, and only that one.
    known = photos.parent / "known"
    known.mkdir()
    shutil.copy(DATA / "people" / "tbbt" / "sheldon" / "sheldon1.png", known / "Sheldon.png")
    rows = rows_of(
        run(
            "cluster",
            photos,
            "--library",
            library,
            "--format",
            "csv",
            "-q",
            "-j1",
            "--known",
            known,
        )
    )
    by_known = {(Path(r["path"]).parent.name, r["name"]) for r in rows if r["named_by"] == "known"}
    assert {who for who, _ in by_known if who != "scenes"} == {"sheldon"}
    assert {name for _, name in by_known} == {"Sheldon"}
    assert any(r["name"] == "Penny" and r["named_by"] == "user" for r in rows)


def test_a_face_left_alone_joins_a_person_when_a_new_photo_of_them_comes(
    tmp_path: Path,
) -> None:
    import sqlite3

    photos, library = tmp_path / "photos", tmp_path / "lib.sqlite3"
    shutil.copytree(DATA / "people" / "tbbt" / "penny", photos / "penny")
    for who, number in (("amy", 1), ("raj", 1), ("raj", 2)):
        (photos / who).mkdir(exist_ok=True)
        shutil.copy(DATA / "people" / "tbbt" / who / f"{who}{number}.png", photos / who)

    def people(min_faces: int) -> dict[str, set[str]]:
        rows = rows_of(
            run("cluster", photos, "--library", library, "--format", "csv", "-q", "-j1",
                "--min-faces", min_faces)
        )  # fmt: skip
        return {who: {r["person"] for r in rows if f"/{who}/" in r["path"]} for who in photos_of}

    photos_of = ("penny", "amy", "raj")
    first = people(3)
    assert first["amy"] == first["raj"] == {""} and "" not in first["penny"]
    with sqlite3.connect(library) as db:  # searched once, kept as in no group
        unclustered = db.execute("SELECT COUNT(*) FROM assignments WHERE person IS NULL")
        assert unclustered.fetchone() == (3,)
    # A new photo of Amy brings her lone face into a person; Raj's pair stays apart (it
    # was searched with these settings already).
    shutil.copy(DATA / "people" / "tbbt" / "amy" / "amy2.png", photos / "amy")
    shutil.copy(DATA / "people" / "tbbt" / "amy" / "amy3.png", photos / "amy")
    second = people(3)
    assert len(second["amy"]) == 1 and "" not in second["amy"]
    assert second["raj"] == {""} and second["penny"] == first["penny"]
    # New settings: the faces in no group are searched again, people keep their number.
    third = people(2)
    assert len(third["raj"]) == 1 and "" not in third["raj"]
    assert third["amy"] == second["amy"] and third["penny"] == first["penny"]


def test_renaming_a_folder_of_the_out_tree_names_that_person(tmp_path: Path) -> None:
    photos, out, library = tmp_path / "photos", tmp_path / "out", tmp_path / "lib.sqlite3"
    for who in ("amy", "penny", "raj"):
        shutil.copytree(DATA / "people" / "tbbt" / who, photos / who)

    def cluster() -> Result:
        result = run(
            "cluster", photos, "--library", library, "--out", out, "--format", "csv", "-q", "-j1"
        )
        assert result.exit_code == 0, result.output
        return result

    def folders() -> dict[str, set[str]]:
        return {
            d.name: {c.name.split("__")[0] for c in d.iterdir()}
            for d in out.iterdir()
            if d.is_dir()
        }

    rows = rows_of(cluster())
    penny = next(r["person"] for r in rows if "/penny/" in r["path"])
    assert folders()[penny] == {"penny"}
    (out / penny).rename(out / "Penny Hofstadter")
    (out / "notes").mkdir()  # a folder of the user's own is left alone
    (out / "notes" / "todo.txt").write_text("mine")
    result = cluster()
    assert f"{penny} is now Penny Hofstadter (its folder was renamed)" in result.stderr
    rows = rows_of(result)
    assert {(r["name"], r["named_by"]) for r in rows if "/penny/" in r["path"]} == {
        ("Penny Hofstadter", "user")
    }
    assert {r["named_by"] for r in rows if "/penny/" not in r["path"]} == {"none"}
    assert folders()["Penny Hofstadter"] == {"penny"} and penny not in folders()
    assert len(list((out / "Penny Hofstadter").iterdir())) == 5
    assert (out / "notes" / "todo.txt").read_text() == "mine"
    # The name survives new photos; a renamed folder's name need not be a safe file name.
    shutil.copytree(DATA / "people" / "tbbt" / "bernadette", photos / "bernadette")
    raj = next(r["person"] for r in rows if "/raj/" in r["path"])
    (out / raj).rename(out / "Raj & friends")
    rows = rows_of(cluster())
    names = {Path(r["path"]).parent.name: r["name"] for r in rows}
    assert names["penny"] == "Penny Hofstadter" and names["raj"] == "Raj & friends"
    assert names["bernadette"] == ""
    assert set(folders()) == {
        "Penny Hofstadter",
        "Raj _ friends",
        "notes",
        next(r["person"] for r in rows if "/amy/" in r["path"]),
        next(r["person"] for r in rows if "/bernadette/" in r["path"]),
    }
    # A plain re-run changes nothing.
    assert rows_of(cluster()) == rows


@pytest.mark.slow
def test_output_is_identical_for_shuffled_input_and_jobs(tmp_path: Path) -> None:
    people = sorted((DATA / "people" / "tbbt").iterdir())
    first = tmp_path / "a"
    second = tmp_path / "b"
    for i, folder in enumerate(people):  # the same photos under names in another order
        shutil.copytree(folder, first / f"{i}-{folder.name}")
        shutil.copytree(folder, second / f"{len(people) - i}-{folder.name}")
    shutil.copytree(DATA / "scenes", first / "scenes")
    shutil.copytree(DATA / "scenes", second / "zz-scenes")

    def table(root: Path, jobs: int) -> list[tuple[str, str, str]]:
        rows = rows_of(
            run(
                "cluster",
                root,
                "--library",
                tmp_path / f"{root.name}.sqlite3",
                "--format",
                "csv",
                "-q",
                "--jobs",
                jobs,
            )
        )
        return sorted((Path(r["path"]).name, r["face"], r["person"]) for r in rows)

    assert table(first, 1) == table(second, 2)


def test_evaluate_prints_clustering_figures_with_strangers(tmp_path: Path) -> None:
    people = tmp_path / "people"
    for who in ("amy", "penny", "raj"):
        shutil.copytree(DATA / "people" / "tbbt" / who, people / who)
    strangers = tmp_path / "strangers"
    strangers.mkdir()
    for who in ("sheldon", "stuart", "leonard"):  # one photo each: people of their own
        shutil.copy(DATA / "people" / "tbbt" / who / f"{who}1.png", strangers / f"{who}.png")
    result = run("evaluate", people, "--strangers", strangers, "--format", "json", "-q", "-j1")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["clustering"]
    assert (figures["faces"], figures["true_people"], figures["true_groups"]) == (18, 6, 3)
    assert (figures["groups"], figures["unclustered"]) == (3, 3)
    assert figures["bcubed_f"] == 1.0 and figures["pairwise_f"] == 1.0
    assert figures["mixed_groups"] == 0 and figures["people_split"] == 0
    table = run("evaluate", people, "-q", "-j1")
    assert "clustering (facematch cluster defaults" in table.stdout
    assert "BCubed F" in table.stdout


def test_out_folder_is_replaced_only_when_it_is_ours(tmp_path: Path) -> None:
    from facematch.errors import UsageError
    from facematch.output.person_folders import MARKER, write_crops
    from facematch.records import FaceBox, FaceRow

    photo = str(DATA / "people" / "tbbt" / "amy" / "amy1.png")
    rows = [FaceRow(photo, 0, FaceBox(10, 139, 139, 10), 1, 3, None, "none")]
    out = tmp_path / "out"
    assert write_crops(rows, out) == 1
    assert [p.name for p in (out / "person_3").iterdir()] == ["amy1.png__face0.jpg"]
    renamed = [FaceRow(photo, 0, FaceBox(10, 139, 139, 10), 1, 3, "Amy", "user")]
    write_crops(renamed, out)  # written by us before: replaced
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["Amy"]
    (out / MARKER).write_text("..\n/\nAmy\n")  # a tampered marker removes nothing outside
    write_crops(rows, out)
    assert (tmp_path / "out").is_dir() and (DATA / "people").is_dir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        write_crops(rows, foreign)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_a_correction_needs_a_library_and_a_person(tmp_path: Path) -> None:
    missing = run("cluster", "name", "person_1", "Alice", "--library", tmp_path / "none.sqlite3")
    assert missing.exit_code == 2 and "no library" in missing.output
    assert not (tmp_path / "none.sqlite3").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(DATA / "tiny-blank.png", empty / "blank.png")
    library = tmp_path / "lib.sqlite3"
    assert run("cluster", empty, "--library", library, "-q", "-j1").exit_code == 0
    unknown = run("cluster", "merge", "person_1", "person_2", "--library", library)
    assert unknown.exit_code == 2 and "no person 'person_1'" in unknown.output


@pytest.mark.parametrize("one_key", [True, False])
def test_each_face_keeps_its_nearest_edges_ties_by_the_other_face(
    one_key: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facematch.matching import cluster

    if not one_key:  # the three-key sort that very large graphs fall back on
        monkeypatch.setattr(cluster, "_KEY_LIMIT", 0)
    rng = np.random.default_rng(3)
    n, k = 40, 3
    pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, n)])
    pairs = pairs[rng.random(len(pairs)) < 0.3]
    low, high = pairs[:, 0], pairs[:, 1]
    d = rng.integers(0, 5, len(low)) / 10  # many ties
    chosen = cluster._nearest_per_face(low, high, d, n, k)
    want = np.zeros(len(low), dtype=bool)
    for face in range(n):
        mine = np.flatnonzero((low == face) | (high == face))
        other = np.where(low[mine] == face, high[mine], low[mine])
        want[mine[np.lexsort((other, d[mine]))[:k]]] = True
    np.testing.assert_array_equal(chosen, want)


@pytest.mark.usefixtures("fake_faces")
def test_the_summary_counts_the_faces_the_rows_and_the_report_hold(tmp_path: Path) -> None:
    """Byte-identical copies are one stored face but two rows: every count is of the rows
    (a face per path under PATH), on stderr as in the output and the report."""
    photos, library = tmp_path / "photos", tmp_path / "lib.sqlite3"
    photos.mkdir()
    shutil.copy(DATA / "obama.jpg", photos / "a.jpg")
    shutil.copy(DATA / "obama.jpg", photos / "a-copy.jpg")
    shutil.copy(DATA / "obama2.jpg", photos / "b.jpg")
    shutil.copy(DATA / "biden.jpg", photos / "c.jpg")
    elsewhere = tmp_path / "elsewhere"  # in the library too, but not under PATH
    elsewhere.mkdir()
    shutil.copy(DATA / "obama3.jpg", elsewhere / "d.jpg")
    shutil.copy(DATA / "lin-manuel-miranda.jpg", elsewhere / "e.jpg")
    assert run("index", elsewhere, "--library", library, "-q", "-j1").exit_code == 0
    report = tmp_path / "people.html"
    args = ("cluster", photos, "--library", library, "--format", "csv", "-q", "-j1")
    result = run(*args, "--report", report)
    rows = rows_of(result)
    assert [(Path(r["path"]).name, r["person"]) for r in rows] == [
        ("a-copy.jpg", "person_1"),
        ("a.jpg", "person_1"),
        ("b.jpg", "person_1"),
        ("c.jpg", ""),
    ]
    summary = "facematch: 1 people (1 new, 0 named) in 4 faces; 1 faces unclustered\n"
    assert result.stderr == summary
    page = report.read_text()
    for card, count in (("photos with faces", 4), ("faces", 4), ("people", 1)):
        assert f"<dt>{card}</dt><dd>{count}</dd>" in page
    assert "<dt>unclustered faces</dt><dd>1</dd>" in page
    again = run(*args)
    assert rows_of(again) == rows
    assert again.stderr == summary.replace("1 new", "0 new")


def test_the_lean_choice_of_nearest_edges_keeps_the_same_edges_as_the_exact_one() -> None:
    """Beyond a million faces the index's graph chooses each face's nearest edges by one
    in-place sort of ranks; where no two distances tie it keeps exactly the edges the
    exact choice keeps, and with ties it keeps as many edges at the same distances."""
    from facematch.matching import cluster

    rng = np.random.default_rng(5)
    n, k = 60, 4
    pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, n)])
    pairs = pairs[rng.random(len(pairs)) < 0.25]
    low, high = pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32)
    distinct = rng.random(len(low))
    exact = cluster._nearest_per_face(low, high, distinct, n, k)
    lean = cluster._nearest_by_rank(low, high, distinct, n, k)
    np.testing.assert_array_equal(lean, exact)
    tied = rng.integers(0, 4, len(low)) / 10
    lean = cluster._nearest_by_rank(low, high, tied, n, k)
    for face in range(n):
        mine = np.flatnonzero((low == face) | (high == face))
        kept = np.sort(tied[mine][lean[mine]])
        assert len(kept) >= min(k, len(mine))  # an edge kept by its other end counts too
        assert np.array_equal(kept[:k], np.sort(tied[mine])[:k])


def test_each_group_picks_its_nearest_partner_ties_by_the_lower_id() -> None:
    from facematch.matching import cluster

    rng = np.random.default_rng(9)
    n = 30
    pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, n)])
    pairs = pairs[rng.random(len(pairs)) < 0.2]
    a, b = pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32)
    linkage = rng.integers(0, 3, len(a)) / 10  # many ties
    best = cluster._best_partner(a, b, linkage, n)
    for group in range(n):
        mine = [
            (linkage[i], int(b[i] if a[i] == group else a[i]))
            for i in range(len(a))
            if group in (a[i], b[i])
        ]
        assert best[group] == (min(mine)[1] if mine else -1)


@pytest.mark.parametrize("exact_ties", [True, False])
def test_int32_ends_choose_the_same_edges_as_int64_ones(exact_ties: bool) -> None:
    """The index's graph has int32 ends: its sort keys (face x distinct distances) must
    be built in int64 (they once overflowed, from about 10,000 faces, and kept the
    wrong neighbours wherever a face had more than it keeps)."""
    from facematch.matching import cluster

    rng = np.random.default_rng(11)
    n, k = 100_000, 4
    faces = rng.choice(n, 400, replace=False)  # ids x 30,000 distances cross 2**31
    a, b = rng.choice(faces, 60_000), rng.choice(faces, 60_000)
    keep = a < b
    key = np.unique(a[keep].astype(np.int64) * n + b[keep])
    low, high = key // n, key % n
    d = rng.random(len(low))
    assert (n - 1) * len(np.unique(d)) > 2**31
    wide = cluster._nearest_per_face(low, high, d, n, k, exact_ties=exact_ties)
    narrow = cluster._nearest_per_face(
        low.astype(np.int32), high.astype(np.int32), d, n, k, exact_ties=exact_ties
    )
    assert 0 < wide.sum() < len(wide)
    np.testing.assert_array_equal(narrow, wide)
