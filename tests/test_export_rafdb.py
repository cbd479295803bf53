"""RAF-DB as MA-Net and Diversified FER's MA-Net read it: `train/` and `test/` of class folders
0 Neutral … 6 Anger, which is `export imagefolder` of RAF-DB's official folds (`fold_0/`), read
here by torchvision's own ImageFolder (on the embedded RAF-DB sample: runs anywhere)."""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets import ImageFolder

from fer_prep.exports import export
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

MA_NET = {"0": "neutral", "1": "happiness", "2": "sadness", "3": "surprise", "4": "fear",
          "5": "disgust", "6": "anger"}


def test_rafdb_reads_as_ma_net_reads_it(samples: Path, tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    run("rafdb", "align", work, root=samples / "rafdb", jobs=2)
    run("rafdb", "folds", work)  # official: train → fold −1, test → fold 0
    export("imagefolder", "rafdb", work, out)
    train, test = (ImageFolder(str(out / "fold_0" / part)) for part in ("train", "test"))
    assert train.class_to_idx == test.class_to_idx
    faces = read_manifest(work / "rafdb/align").set_index("sample_id")
    for dataset, split in ((train, "train"), (test, "test")):
        assert dataset.samples
        for path, index in dataset.samples:
            face = faces.loc[Path(path).stem]
            assert face["split"] == split and face["label"] == MA_NET[dataset.classes[index]]
