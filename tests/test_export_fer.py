"""The `ferplus` and `diversified-fer` exports, read back as their seeds read them.

`generate_training_data` below is microsoft/FERPlus `src/generate_training_data.py` (which image
goes where, with which pixels); `ferplus_load_folders` is `src/ferplus.py`
`FERPlusReader.load_folders` with its majority `_process_data`; `diversified_load` is
negarhdr/Diversified-Facial-Expression-Recognition `utils/udata.py` `FERplus._load`. They follow
the seeds line by line (no image augmentation), so a layout the seeds cannot read fails here.
"""

from __future__ import annotations

import csv
import os
import sys
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_prep.errors import InputError
from fer_prep.exports import export
from fer_prep.runner import run

# generate_training_data.py
FOLDER_NAMES = {"Training": "FER2013Train", "PublicTest": "FER2013Valid",
                "PrivateTest": "FER2013Test"}
EMOTION_COUNT = 8  # train.py: len(emotion_table)
# udata.FERplus.fer_sets
FER_SETS = {0: "FER2013Train/", 1: "FER2013Valid/", 2: "FER2013Test/"}
FER2013_NAMES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
FERPLUS_NAMES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                 "contempt")
#: udata.FERplus.get_class: AffectNet's order, which _parse_to_label maps FER+'s argmax to
AFFECTNET = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger",
             "contempt")


# --- the seeds, as they read and write files ------------------------------------------------

def generate_training_data(fer_path: Path, ferplus_path: Path) -> dict[str, tuple[str, np.ndarray,
                                                                                  list[str]]]:
    """FERPlus's generate_training_data.main without the saving: FER+ name → (folder, the 48×48
    image it saves, the fer2013new.csv row)."""
    ferplus_entries = []
    with open(ferplus_path) as csvfile:
        for row in islice(csv.reader(csvfile, delimiter=","), 1, None):
            ferplus_entries.append(row)
    out = {}
    index = 0
    with open(fer_path) as csvfile:
        for row in islice(csv.reader(csvfile, delimiter=","), 1, None):
            ferplus_row = ferplus_entries[index]
            file_name = ferplus_row[1].strip()
            if len(file_name) > 0:
                image = np.asarray(row[1].split(" "), dtype=np.uint8).reshape(48, 48)
                out[file_name] = (FOLDER_NAMES[row[2]], image, ferplus_row)
            index += 1
    return out


def majority(emotion_raw: list[float]) -> list[float]:
    """FERPlusReader._process_data(emotion_raw, 'majority') (= udata.FERplus._process_data)."""
    size = len(emotion_raw)
    emotion_unknown = [0.0] * size
    emotion_unknown[-2] = 1.0
    for i in range(size):  # remove emotions with a single vote (outlier removal)
        if emotion_raw[i] < 1.0 + sys.float_info.epsilon:
            emotion_raw[i] = 0.0
    sum_list = sum(emotion_raw)
    emotion = [0.0] * size
    maxval = max(emotion_raw)
    if maxval > 0.5 * sum_list:
        emotion[np.argmax(emotion_raw)] = maxval
    else:
        emotion = emotion_unknown
    return [float(i) / sum(emotion) for i in emotion]


def ferplus_load_folders(base_folder: Path, sub_folders: list[str], label_file_name: str
                         ) -> list[tuple]:
    """FERPlusReader.load_folders('majority'): (image_path, image, emotion, box, raw row)."""
    data = []
    for folder_name in sub_folders:
        folder_path = os.path.join(base_folder, folder_name)
        in_label_path = os.path.join(folder_path, label_file_name)
        with open(in_label_path) as csvfile:
            emotion_label = csv.reader(csvfile)
            for row in emotion_label:
                image_path = os.path.join(folder_path, row[0])
                image_data = Image.open(image_path)
                image_data.load()
                box = list(map(int, row[1][1:-1].split(",")))
                emotion_raw = list(map(float, row[2:len(row)]))
                emotion = majority(list(emotion_raw))
                idx = np.argmax(emotion)
                if idx < EMOTION_COUNT:  # not unknown or non-face
                    emotion = emotion[:-2]
                    emotion = [float(i) / sum(emotion) for i in emotion]
                    data.append((image_path, image_data, emotion, box, row))
    return data


def parse_to_label(idx: list[float]) -> int:
    """udata.FERplus._parse_to_label: FER+'s argmax in AffectNet's order."""
    emo_to_return = np.argmax(idx)
    swap = {2: 3, 3: 2, 4: 6, 6: 4}
    return int(swap.get(int(emo_to_return), emo_to_return))


def diversified_load(base_path_to_fer_plus: Path, idx_set: int,
                     max_loaded_images_per_label: int = 100000) -> list[tuple]:
    """udata.FERplus._load (without its training-set shuffle): (image path, 224×224 BGR image,
    label, the 48×48 crop)."""
    csv_label, data = [], []
    counter = [0] * 8
    path_folders_images = os.path.join(base_path_to_fer_plus, "Images", FER_SETS[idx_set])
    path_folders_labels = os.path.join(base_path_to_fer_plus, "Labels", FER_SETS[idx_set])
    with open(path_folders_labels + "/label.csv") as csvfile:
        for row in csv.reader(csvfile):
            csv_label.append(row)
    for line in csv_label:
        emotion_raw = list(map(float, line[2:len(line)]))
        emotion = majority(emotion_raw)
        emotion = emotion[:-2]
        try:
            emotion = [float(i) / sum(emotion) for i in emotion]
            emotion = parse_to_label(emotion)
        except ZeroDivisionError:
            emotion = 9
        if emotion < 8 and counter[int(emotion)] < max_loaded_images_per_label:
            counter[int(emotion)] += 1
            path = os.path.join(path_folders_images, line[0])
            img = cv2.imread(path, cv2.IMREAD_COLOR)  # uimage.read
            assert img is not None, path
            img = np.array(img, np.uint8)
            box = list(map(int, line[1][1:-1].split(",")))
            assert box[-1] == 48, ("[INFO] Face is not centralized.", path, box)  # exit(-1)
            crop = img[box[0]:box[2], box[1]:box[3], :]
            data.append((path, cv2.resize(crop, (224, 224)), emotion, crop))
    return data


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fer_work(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = shared / "data/fer2013"
    work = tmp_path_factory.mktemp("fer-work")
    for dataset in ("ferplus", "fer2013"):  # the first 400 rows of the full file
        run(dataset, "align", work, root=root, jobs=2, first_row=0)
        run(dataset, "folds", work)  # official
    seed = generate_training_data(root / "fer2013.csv", root / "fer2013new.csv")
    return {"work": work, "root": root, "seed": seed}


def _check_label_file(path: Path) -> list[str]:
    """The shipped label.csv's bytes: no header, `name,"(0, 0, 48, 48)",v0,…,v9\\n` rows."""
    data = path.read_bytes()
    lines = data.decode("ascii").split("\n")
    assert data == b"" or (data.endswith(b"\n") and b"\r" not in data)
    for line in lines[:-1]:
        name, rest = line.split(",", 1)
        assert name.startswith("fer") and name.endswith(".png")
        assert rest.startswith('"(0, 0, 48, 48)",') and len(rest.split(",")) == 14
    return lines[:-1]


# --- ferplus ----------------------------------------------------------------------------------

def test_ferplus_export_reads_as_ferplus_reads_it(fer_work: dict, tmp_path: Path) -> None:
    out = tmp_path / "ferplus"
    with pytest.raises(InputError, match=r"FER2013Valid/label\.csv lists no image"):
        export("ferplus", "ferplus", fer_work["work"], out)  # the shared rows are all Training
    assert not out.exists()
    result = export("ferplus", "ferplus", fer_work["work"], out, allow_empty=True)
    assert any("--allow-empty" in n for n in result.notes)
    seed = fer_work["seed"]
    listed = {}
    for folder in FOLDER_NAMES.values():
        for line in _check_label_file(out / folder / "label.csv"):
            listed[line.split(",")[0]] = folder
    assert list(listed) == sorted(listed)
    data = ferplus_load_folders(out, ["FER2013Train", "FER2013Valid", "FER2013Test"],
                                "label.csv")
    assert len(data) == len(listed) == result.counts["FER2013Train images"] > 300
    for image_path, image, emotion, box, row in data:
        name = row[0]
        folder, pixels, ferplus_row = seed[name]
        assert Path(image_path).parent.name == folder == listed[name]  # Usage
        assert image.mode == "L" and image.size == (48, 48)
        np.testing.assert_array_equal(np.asarray(image), pixels)  # FER2013's own pixels
        assert row[2:] == [v.strip() for v in ferplus_row[2:12]]  # fer2013new.csv's votes
        assert box == [0, 0, 48, 48]  # Rect(left, top, right, bottom): the whole image
        assert len(emotion) == EMOTION_COUNT and abs(sum(emotion) - 1) < 1e-9
    # nothing FERPlus would train on is missing: every named row its majority keeps is listed
    kept = {name for name, (_, _, r) in seed.items()
            if np.argmax(majority(list(map(float, r[2:12])))) < EMOTION_COUNT}
    assert kept == set(listed)


def test_ferplus_export_puts_every_usage_in_its_folder(samples: Path, tmp_path: Path) -> None:
    """The embedded sample has all three Usage values; the official scheme's PublicTest rows
    are FERPlus's validation part."""
    root, work = samples / "ferplus", tmp_path / "work"
    run("ferplus", "align", work, root=root, jobs=2)
    run("ferplus", "folds", work)
    result = export("ferplus", "ferplus", work, tmp_path / "out")
    assert any("PublicTest" in n for n in result.notes)
    seed = generate_training_data(root / "fer2013.csv", root / "fer2013new.csv")
    data = ferplus_load_folders(tmp_path / "out", list(FOLDER_NAMES.values()), "label.csv")
    folders = {Path(p).parent.name for p, *_ in data}
    assert folders == set(FOLDER_NAMES.values())
    for image_path, image, _, box, row in data:
        folder, pixels, ferplus_row = seed[row[0]]
        assert Path(image_path).parent.name == folder
        np.testing.assert_array_equal(np.asarray(image), pixels)
        assert row[2:] == ferplus_row[2:12] and box == [0, 0, 48, 48]


def test_ferplus_export_resizes_other_alignments(samples: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    run("ferplus", "align", work, root=samples / "ferplus", jobs=2, size=64, grey=False)
    run("ferplus", "folds", work)
    result = export("ferplus", "ferplus", work, tmp_path / "out")
    assert result.counts["faces made 48-px grey"] > 0
    assert any("not FER2013's own pixels" in n for n in result.notes)
    for *_, image, _, box, _ in ferplus_load_folders(tmp_path / "out",
                                                     list(FOLDER_NAMES.values()), "label.csv"):
        assert image.mode == "L" and image.size == (48, 48) and box == [0, 0, 48, 48]


def test_ferplus_export_refuses_fer2013(fer_work: dict, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="votes"):
        export("ferplus", "fer2013", fer_work["work"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- diversified-fer --------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["ferplus", "fer2013"])
def test_diversified_export_reads_as_udata_reads_it(dataset: str, fer_work: dict,
                                                    tmp_path: Path) -> None:
    out = tmp_path / dataset
    with pytest.raises(InputError, match=r"Labels/FER2013Valid/label\.csv lists no image"):
        export("diversified-fer", dataset, fer_work["work"], out)
    export("diversified-fer", dataset, fer_work["work"], out, allow_empty=True)
    seed = fer_work["seed"]
    fer2013 = _fer2013_rows(fer_work["root"] / "fer2013.csv")
    loaded = {}
    for idx_set, folder in FER_SETS.items():
        lines = _check_label_file(out / "Labels" / folder / "label.csv")
        data = diversified_load(out, idx_set)
        assert len(data) == len(lines)  # the seed keeps every listed row
        for path, image, label, crop in data:
            name = Path(path).name
            if dataset == "ferplus":  # named by FER+'s Image name
                usage_folder, pixels, _ = seed[name]
            else:  # by the row's index (FER+'s names skip the rows it leaves unnamed)
                usage_folder, pixels, fer2013_label = fer2013[name]
            assert Path(path).parent.name == usage_folder == folder.rstrip("/")  # Usage
            assert image.shape == (224, 224, 3) and crop.shape == (48, 48, 3)
            for channel in range(3):  # a grey PNG read as colour: FER2013's pixels thrice
                np.testing.assert_array_equal(crop[..., channel], pixels)
            if dataset == "ferplus":
                votes = list(map(float, seed[name][2][2:12]))
                expected = FERPLUS_NAMES[int(np.argmax(majority(votes)))]
            else:
                expected = fer2013_label
            assert AFFECTNET[label] == expected
            loaded[name] = label
    if dataset == "ferplus":  # FER+'s 8 classes, every named row with a majority
        kept = {name for name, (_, _, r) in seed.items()
                if np.argmax(majority(list(map(float, r[2:12])))) < EMOTION_COUNT}
        assert set(loaded) == kept
    else:  # FER2013's 7 labels, every row
        assert set(loaded) == set(fer2013) and AFFECTNET.index("contempt") not in loaded.values()


def test_diversified_export_on_the_samples(samples: Path, tmp_path: Path) -> None:
    for dataset in ("fer2013", "ferplus"):
        root, work, out = samples / dataset, tmp_path / dataset, tmp_path / f"out-{dataset}"
        run(dataset, "align", work, root=root, jobs=2)
        run(dataset, "folds", work)
        export("diversified-fer", dataset, work, out)
        if dataset == "ferplus":
            folder_of = {n: v[0] for n, v in generate_training_data(
                root / "fer2013.csv", root / "fer2013new.csv").items()}
        else:
            folder_of = {n: v[0] for n, v in _fer2013_rows(root / "fer2013.csv").items()}
        for idx_set, folder in FER_SETS.items():
            data = diversified_load(out, idx_set)
            assert data, (dataset, folder)
            for path, *_ in data:
                assert folder_of[Path(path).name] == folder.rstrip("/")


def test_diversified_export_refuses_other_datasets(samples: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    run("ckplus", "align", work, root=samples / "ckplus", jobs=2)
    run("ckplus", "folds", work, k=2)
    with pytest.raises(InputError, match="not FER2013"):
        export("diversified-fer", "ckplus", work, tmp_path / "out")


def _fer2013_rows(path: Path) -> dict[str, tuple[str, np.ndarray, str]]:
    """fer2013.csv's rows by fer2013's sample id (`fer` + the row's index): (the folder of its
    Usage, its 48×48 pixels, its label name)."""
    with open(path) as fh:
        return {f"fer{i:07d}.png": (FOLDER_NAMES[row["Usage"]],
                                    np.asarray(row["pixels"].split(" "), np.uint8).reshape(48, 48),
                                    FER2013_NAMES[int(row["emotion"])])
                for i, row in enumerate(csv.DictReader(fh))}
