"""Diversified FER's FER+ data root (negarhdr/Diversified-Facial-Expression-Recognition), as its
`utils/udata.py` `FERplus` reads it: README's `FER_2013/Dataset/`, the scripts' `--data` /
`base_path_to_dataset`.

    Images/FER2013Train/fer0000000.png    48×48 grey PNG (ferplus: FER+'s `Image name`;
                                          fer2013: `<sample_id>.png`, see below)
    Images/FER2013Valid/…, Images/FER2013Test/…   (Usage Training, PublicTest, PrivateTest)
    Labels/FER2013Train/label.csv         no header: `fer0000000.png,"(0, 0, 48, 48)",<10 votes>`
    Labels/FER2013Valid/label.csv, Labels/FER2013Test/label.csv   (FERPlus's label.csv rows)

Source: `utils/udata.py` `FERplus` (`self.fer_sets = {0: 'FER2013Train/', 1: 'FER2013Valid/', 2:
'FER2013Test/'}`; `path.join(self.base_path_to_FER_plus, 'Images', self.fer_sets[...])` and
`'Labels'`; `open(path_folders_labels + '/label.csv')` by `csv.reader`; `emotion_raw =
list(map(float, l[2:len(l)]))` through FERPlus's majority `_process_data`, `emotion[:-2]`
renormalised (a ZeroDivisionError, no majority or NF, drops the row) and `_parse_to_label`: the
argmax in AffectNet's order 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger,
7 Contempt, `num_labels = 8`; `uimage.read(path.join(path_folders_images, l[0]))` is
`cv2.imread(…, cv2.IMREAD_COLOR)`; `box = list(map(int, l[1][1:-1].split(',')))`, `exit(-1)` when
`box[-1] != 48`, `img[box[0]:box[2], box[1]:box[3], :]` resized to 224×224) and
`esr_ferplus.py` / `manet_ferplus.py` (idx_set 0 at most 5000 rows a class, shuffled, and 1, the
whole validation set; they divide by `len(train_data)` and `len(val_data)`; no script loads 2).

`ferplus` gives FER+'s own votes (the seed takes their majority, whatever label mode fer-prep
used; a Training row without one is named in a note). `fer2013` has no votes: each row gets 10
votes for its FER2013 label (its FER+ column), so the seed's majority is that label: FER2013's 7
classes, no contempt; its files are named by the row's index, which is FER+'s name only up to
the first row FER+ leaves unnamed (FER+ numbers its named rows: the 61st row is fer0000059.png),
so do not mix them with FER+'s label.csv. Rows, folders and faces are as in the `ferplus`
export (usable rows by Usage, official-scheme PublicTest rows as validation, 48-px grey faces as
they are).
"""

from __future__ import annotations

from fer_prep.datasets.fer2013 import FER2013
from fer_prep.datasets.ferplus import FERPlus
from fer_prep.errors import InputError
from fer_prep.exports import Source, Staging
from fer_prep.exports.ferplus import BOX, FOLDERS, LABELS, place_face, split_rows
from fer_prep.ferplus_votes import VOTE_COLUMNS, target

VOTES = 10  # the taggers per FER+ image: a fer2013 row's label gets them all
#: parts the seed's scripts load (idx_set 0 and 1) and divide by the size of
LOADED = ("Training", "PublicTest")


def write(source: Source, out: Staging) -> None:
    """Write Diversified FER's `Images/` and `Labels/` trees for `source` into `out`."""
    if not isinstance(source.info, FER2013):
        raise InputError(f"diversified-fer export is FER+'s layout of FER2013's images: "
                         f"{source.dataset} is not FER2013 (use fer2013 or ferplus)")
    source.need_faces("diversified-fer")
    rows = split_rows(source, out)
    votes_of = _ferplus_votes if isinstance(source.info, FERPlus) else _fer2013_votes
    if isinstance(source.info, FERPlus):
        rows = source.with_alignment(rows, ("ferplus_name", "votes"))
        no_majority = [r for r in rows.itertuples() if r.split == "Training"
                       and target(list(r.votes), "majority", True)[0] is None]
        if no_majority:
            out.notes.append(f"{len(no_majority)} Training rows have no FER+ majority (e.g. "
                             f"{no_majority[0].ferplus_name}): the seed, which always takes the "
                             "majority, drops them")
    else:
        known = rows["label"].isin(VOTE_COLUMNS)
        for label, n in rows.loc[~known, "label"].fillna("unlabelled").value_counts().items():
            out.notes.append(f"{n} {label} rows left out: no FER2013 label to vote for")
        rows = rows[known].assign(ferplus_name=rows["sample_id"] + ".png")
        out.notes.append(f"fer2013 has no FER+ votes: each row's label gets all {VOTES} votes")
    lines: dict[str, list[str]] = {folder: [] for folder in FOLDERS.values()}
    for row in rows.sort_values("ferplus_name").itertuples():
        name, folder = str(row.ferplus_name), FOLDERS[row.split]
        if place_face(source, out, row.face, f"Images/{folder}/{name}"):
            lines[folder].append(f"{name},{BOX},{','.join(map(str, votes_of(row)))}\n")
    for folder, part in lines.items():
        out.text(f"Labels/{folder}/{LABELS}", "".join(part))
        out.counts[f"{folder} images"] = len(part)
    out.loader_check("diversified-fer", [
        f"Labels/{FOLDERS[split]}/{LABELS} lists no image (the seed divides by its size)"
        for split in LOADED if not lines[FOLDERS[split]]])


def _ferplus_votes(row: object) -> list[int]:
    return [int(v) for v in row.votes]  # type: ignore[attr-defined]


def _fer2013_votes(row: object) -> list[int]:
    votes = [0] * len(VOTE_COLUMNS)
    votes[VOTE_COLUMNS.index(row.label)] = VOTES  # type: ignore[attr-defined]
    return votes
