"""Contract tests over every registry, on the embedded sample data (no ../shared), as timm tests
every registered model: each dataset, stage, backend, template, fold scheme and export gets the
same checks for free, so one registered tomorrow is held to them too."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_prep.align import TEMPLATES, align_face
from fer_prep.cache import WHOLE
from fer_prep.datasets import KINDS, get_dataset, list_datasets
from fer_prep.errors import FerPrepError, FoldError
from fer_prep.exports import EXPORTS, MARKER, export
from fer_prep.faces import (
    FaceBackend,
    create_backend,
    has_video_mode,
    list_backends,
    model_files,
)
from fer_prep.folds import SCHEMES, Options, assign, fold_count
from fer_prep.images import read_image
from fer_prep.labels import CANONICAL
from fer_prep.manifest import read_manifest, schema
from fer_prep.params import list_presets
from fer_prep.reports.status import COMPLETE, DAMAGED, work_status
from fer_prep.runner import run
from fer_prep.stages import get_stage, list_stages, stages_for

#: the order a dataset's stages run in (an upstream stage before what reads it)
ORDER = ("video2frame", "align", "align-video", "folds", "masks")


@pytest.mark.parametrize("name", list_datasets())
def test_dataset_contract(name: str, samples: Path) -> None:
    ds = get_dataset(name)
    assert ds.name == name and ds.kind in KINDS and ds.title and ds.root_help
    assert set(ds.codes.values()) <= set(CANONICAL)
    for order in ds.class_orders.values():
        assert set(order) <= set(CANONICAL) and len(set(order)) == len(order)
    assert stages_for(ds), "no stage applies"
    items = ds.read(samples / name, ds.options())
    assert items, "the sample reads to nothing"
    ids = [item["sample_id"] for item in items]
    assert len(ids) == len(set(ids)), "sample ids must be unique"
    paths = set()
    for item in items:
        assert {"sample_id", "dataset", "source_path", "status", "message"} <= set(item)
        assert item["dataset"] == name
        if item["status"] == "ok":
            assert Path(item["source_path"]).is_absolute() and Path(item["source_path"]).exists()
            assert item["label"] is None or item["label"] in CANONICAL
            rel = ds.item_path(item)
            assert not Path(rel).is_absolute() and ".." not in Path(rel).parts
            paths.add(rel)
        else:
            assert item["message"], "a row the reader cannot use says why"
    assert len(paths) == sum(i["status"] == "ok" for i in items), "item paths collide"


@pytest.mark.parametrize("name", list_stages())
def test_stage_contract(name: str) -> None:
    stage = get_stage(name)
    assert stage.name == name and stage.folder and stage.version >= 1 and stage.help()
    assert dataclasses.is_dataclass(stage.Params) and stage.Params.__dataclass_params__.frozen
    params = stage.Params.resolve()
    assert params == stage.Params.resolve(), "resolving is deterministic"
    for f in dataclasses.fields(stage.Params):
        assert f.metadata.get("help"), f"{name}: option {f.name} has no help"
    assert any(c["required"] == "yes" for c in schema(stage.schema))
    assert set(stage.outputs) <= {c["column"] for c in schema(stage.schema)} | {"diff_path"}
    assert any(stage.applies_to(get_dataset(d)) for d in list_datasets())
    for upstream in stage.inputs:
        assert upstream in {get_stage(s).folder for s in list_stages()}


@pytest.fixture(scope="module")
def chains(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every stage that applies to every dataset, run in order on its sample; then again."""
    out = {}
    for name in list_datasets():
        ds = get_dataset(name)
        work = tmp_path_factory.mktemp(f"work-{name}")
        first, second, given = {}, {}, {}
        stages = [s for s in ORDER if s in stages_for(ds).values()]
        reader = {f.name for f in dataclasses.fields(ds.Options)}
        for runs in (first, second):
            for stage in stages:
                options = {"k": 2} if stage == "folds" else {}
                root = samples / name if get_stage(stage).root == "required" else None
                if root and "masks" in stages and "frames" in reader:
                    options = {"frames": "neutral-peak"}  # masks need neutral faces (Oulu: peak)
                given[stage] = {"root": root, **options}
                runs[stage] = run(name, stage, work, jobs=2, **given[stage])
        out[name] = {"work": work, "first": first, "second": second, "stages": stages,
                     "given": given}
    return out


@pytest.mark.parametrize("name", list_datasets())
def test_every_stage_runs_on_every_sample_and_reruns_as_a_no_op(name: str, chains) -> None:
    chain = chains[name]
    for stage in chain["stages"]:
        result, again = chain["first"][stage], chain["second"][stage]
        manifest = read_manifest(result.folder)
        assert len(manifest) == sum(result.counts.values()) > 0, stage
        assert set(manifest["status"]) <= set(result.counts), stage
        assert result.record["complete"] and not result.record["stale"], stage
        assert again.skipped and not again.computed, (stage, again.summary())
        for col in get_stage(stage).outputs:
            if col in manifest:
                files = [p for p in manifest[col].dropna() if p]
                assert all((result.folder / p).is_file() for p in files), (stage, col)


@pytest.mark.parametrize("name", list_backends())
def test_backend_contract(name: str, ck_sample: Path) -> None:
    assert model_files(name) and all(p.is_file() for p in model_files(name))
    backend = create_backend(name)
    frame = read_image(sorted((ck_sample / "cohn-kanade-images/S901/001").glob("*.png"))[0])
    faces = backend.faces(frame)
    assert len(faces) == 1, name
    face = faces[0]
    h, w = frame.shape[:2]
    assert face.landmarks68.shape == (68, 2)
    x, y, bw, bh = face.box
    assert x >= 0 and y >= 0 and x + bw <= w + 1 and y + bh <= h + 1
    inside = (face.landmarks68 >= [x - 1, y - 1]) & (face.landmarks68 <= [x + bw + 1, y + bh + 1])
    assert inside.all(), "the box holds every landmark"
    assert backend.faces(np.zeros((8, 8), np.uint8)) == []  # too small to hold a face
    track = backend.tracker()
    assert track(frame) is not None
    # the registry says, without importing it, whether the backend follows faces itself
    assert has_video_mode(name) == (type(backend).tracker is not FaceBackend.tracker)


@pytest.fixture(scope="module")
def sample_face(ck_sample: Path):
    frame = read_image(sorted((ck_sample / "cohn-kanade-images/S902/002").glob("*.png"))[0])
    return frame, create_backend("dlib-hog").faces(frame)[0]


@pytest.mark.parametrize("name", TEMPLATES.names())
def test_template_contract(name: str, sample_face) -> None:
    frame, face = sample_face
    tpl = TEMPLATES.get(name)
    assert tpl.doc and tpl.size >= 16 and tpl.padding >= 0
    chip, matrix = align_face(frame, face, name)
    assert chip.shape[:2] == (tpl.size, tpl.size) and matrix.shape == (2, 3)
    target = tpl.eye_centres(tpl.size, tpl.padding)
    if target is None:  # a template that places no eyes maps the face's box onto the chip
        x, y, w, h = face.detector_box or face.box
        corners = np.array([(x, y), (x + w, y + h)]) @ matrix[:, :2].T + matrix[:, 2]
        side = tpl.size - 1  # dlib's convention: the box spans the corner pixels' centres
        assert np.abs(corners - [(0, 0), (side, side)]).max() < 0.06 * tpl.size, corners
        return
    eyes = np.stack([face.landmarks68[36:42].mean(0), face.landmarks68[42:48].mean(0)])
    placed = eyes @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(placed - target).max() < 0.06 * tpl.size, (placed, target)


@pytest.mark.parametrize("name", SCHEMES.names())
def test_fold_scheme_contract(name: str, chains) -> None:
    """A scheme places the rows of at least one sample, and refuses the others with FoldError
    (a user's error, with a message), never anything else."""
    placed_any = False
    for dataset, chain in chains.items():
        faces = read_manifest(chain["work"] / dataset / "align")
        split = None
        if name == "file":  # whole subjects (or, without them, whole sequences) per fold
            groups = faces["subject"].fillna(faces["sequence"])
            fold = {g: i % 2 for i, g in enumerate(sorted(groups.unique()))}
            split = pd.DataFrame({"sequence": faces["sequence"], "fold": groups.map(fold)})
            split = split.drop_duplicates("sequence")
        try:
            opts = Options(get_dataset(dataset), k=2, split=split, split_name="test")
            placed = assign(faces, name, opts)
        except FoldError as exc:
            assert str(exc)
            continue
        placed_any = True
        assert len(placed) == len(faces) and set(placed["status"]) <= {"ok", "excluded"}
        ok = placed[placed["status"] == "ok"]
        assert len(ok) and set(ok["fold"]) <= {-1, *range(fold_count(name, placed, opts))}
        assert (placed.loc[placed["status"] == "excluded", "message"] != "").all()
        if not SCHEMES.get(name).mixes_subjects:  # mafer: MAFER's own folds mix them
            by_subject = ok.dropna(subset=["subject"]).groupby("subject")["fold"].nunique()
            assert (by_subject == 1).all(), "a subject in two folds"
    assert placed_any, f"scheme {name} places no sample"


@pytest.mark.parametrize("name", EXPORTS.names())
def test_export_contract(name: str, chains, tmp_path: Path) -> None:
    """An export writes every sample it can take (and re-writes it the same), and refuses the
    others with a user's error naming why, never anything else."""
    wrote_any = False
    for dataset, chain in chains.items():
        out = tmp_path / dataset
        try:
            result = export(name, dataset, chain["work"], out)
        except FerPrepError as exc:
            assert str(exc) and not out.exists()
            continue
        wrote_any = True
        written = [p for p in out.rglob("*") if p.is_file() and p.name != MARKER]
        assert written and (out / MARKER).is_file(), dataset
        assert sum(result.counts.values()) > 0 and result.summary()
        again = export(name, dataset, chain["work"], out)  # an earlier export is replaced
        assert again.counts == result.counts, dataset
    assert wrote_any, f"export {name} takes no sample"


@pytest.mark.parametrize("name", list_presets())
def test_preset_contract(name: str) -> None:
    for stage in ("align", "align-video"):
        params = get_stage(stage).Params.resolve(name)
        assert params.size and params.padding is not None and params.backend in list_backends()


def _kinds(folder: Path) -> list[str]:
    """One output file of each kind the stage's `whole.json` lists: each top-level file, and the
    first of each (depth, suffix) below it (a chip, a fold's CSV, a mask)."""
    seen: dict[object, str] = {}
    for rel in json.loads((folder / WHOLE).read_text())["path"]:
        parts = Path(rel).parts
        seen.setdefault(rel if len(parts) == 1 else (len(parts), Path(rel).suffix), rel)
    return list(seen.values())


@pytest.mark.parametrize("name", list_stages())
def test_a_damaged_output_is_told_redone_and_refused_downstream(name: str, chains,
                                                                 tmp_path: Path) -> None:
    """Truncate each kind of output a stage records: `status` calls the stage damaged naming the
    file, every command that reads it stops on one line naming it, and the stage's own command
    redoes it to the same bytes."""
    dataset, chain = next((d, c) for d, c in chains.items() if name in c["stages"])
    folder = get_stage(name).folder
    readers = [s for s in chain["stages"] if folder in get_stage(s).inputs]
    kinds = _kinds(chain["first"][name].folder)
    assert "manifest.parquet" in kinds and "manifest.csv" in kinds, kinds
    for i, rel in enumerate(kinds):
        work = shutil.copytree(chain["work"], tmp_path / str(i))  # a copy: new mtimes, whole
        states = {s.stage: s.state for s in work_status(work, dataset)[0].stages}
        assert set(states.values()) == {COMPLETE}, states
        path = work / dataset / folder / rel
        original = path.read_bytes()
        path.write_bytes(original[: len(original) // 2] if len(original) > 1 else b"??")

        status = {s.stage: s for s in work_status(work, dataset)[0].stages}
        assert status[folder].state == DAMAGED and str(path) in status[folder].detail, rel
        refused = []
        for reader in readers:
            with pytest.raises(FerPrepError) as exc:
                run(dataset, reader, work, jobs=1)
            refused.append(str(exc.value))
        for export_name in [] if readers else EXPORTS.names():  # nothing but an export reads it
            try:
                export(export_name, dataset, work, tmp_path / f"out-{i}-{export_name}")
            except FerPrepError as exc:
                refused.append(str(exc))
        assert refused and all("\n" not in e for e in refused), (rel, refused)
        assert any(str(path) in e for e in refused), (rel, refused)

        again = run(dataset, name, work, jobs=1, **chain["given"][name])
        assert not again.skipped and path.read_bytes() == original, rel
        states = {s.stage: s.state for s in work_status(work, dataset)[0].stages}
        assert states[folder] == COMPLETE, (rel, states)
