"""The default backend on MediaPipe's Tasks API against the legacy one it replaced, in one run.

The legacy backend (mediapipe 0.10.21's `solutions` API: BlazeFace full-range, then the face
mesh) is the last fer-prep release before the change, `LEGACY` below, installed from this
repository's own history into a venv of its own (`bench/.legacy/`, made on the first run: it
needs Python 3.11 or 3.12 and PyPI, where mediapipe 0.10.21 pulls numpy 1.26). Both run the
same scripts on the same data of ../shared, one after the other:

- `backend_probe.py`, pinned to one core: faces found (the 333 CK+ frames, the face videos, the
  AFEW sample clips, the media photos, the small faces of dlib's PASCAL VOC examples against its
  annotated boxes, FER2013's 400 rows at 48 and at 192 px), the 68 points against dlib's on its
  held-out faces, followed against per-frame landmarks on CK+, and ms a frame;
- `fmpn_masks.py`: Pearson r of the FMPN masks with FMPN's own (the `fmpn` preset);
- `startup.py`: `fer-prep --help` and a no-op re-run;
- `throughput.py` (not with --quick): faces/s per core against Emotion-FAN's method and the I/O
  floor, --jobs 2 against 1 (the seed's method runs once, in this checkout's venv).

Prints each measure for both and the ratio new / legacy.

    python bench/backends.py [--shared ../shared] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
#: the last commit with the legacy backend (mediapipe 0.10.21, `solutions`)
LEGACY = "c40b1d5ab36cf8e4f7fc343d9a1cd85e20e78961"
LEGACY_VENV = BENCH / ".legacy"


def legacy_python() -> Path:
    """The legacy venv's interpreter, made first if missing: fer-prep at LEGACY, from git."""
    python = LEGACY_VENV / "bin/python"
    if python.exists():
        return python
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "legacy.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), LEGACY],
                       check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "src", filter="data")
        subprocess.run([sys.executable, "-m", "venv", str(LEGACY_VENV)], check=True)
        source = f"{Path(tmp) / 'src'}[cluster]"  # throughput.py compares with --cluster
        subprocess.run([str(python), "-m", "pip", "install", "-q", source], check=True)
    return python


def run(python: Path, script: str, *args: str, pin: bool = False) -> str:
    """A bench script's stdout under `python` (the legacy venv's native logs dropped)."""
    command = [str(python), str(BENCH / script), *args]
    if pin:
        command = ["taskset", "-c", "0", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": ""})
    if done.returncode:
        sys.exit(f"{python} {script} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else None


def marginals(text: str, section: int) -> dict[str, float]:
    """{method: marginal faces/s} of one per-core table of throughput.py's output (0: video,
    1: CK+ stills)."""
    table = text.split("\nCK+ stills")[section].split("\nper machine")[0]
    return {m.group(1).strip(): float(m.group(2)) for m in re.finditer(
        r"^((?:fer-prep|I/O floor|Emotion-FAN)[^\n]*?)\s{2,}[\d.]+\s+([\d.]+)", table, re.M)}


def row(name: str, old: object, new: object, ratio: bool = True) -> None:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, list):
            return "/".join(cell(x) for x in v)
        return "—" if v is None else str(v)

    r = ""
    if ratio and isinstance(old, int | float) and isinstance(new, int | float) and old:
        r = f"{new / old:.2f}×"
    print(f"{name:46s} {cell(old):>22s} {cell(new):>22s} {r:>8s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", REPO.parent / "shared")))
    parser.add_argument("--quick", action="store_true", help="leave throughput.py out")
    args = parser.parse_args()
    shared = str(args.shared.resolve())
    pythons = {"legacy": legacy_python(), "new": Path(sys.executable)}
    probe = {k: json.loads(run(p, "backend_probe.py", "--shared", shared, pin=True))
             for k, p in pythons.items()}
    masks = {k: run(p, "fmpn_masks.py", "--shared", shared) for k, p in pythons.items()}
    startup = {k: run(p, "startup.py", "--shared", shared) for k, p in pythons.items()}

    old, new = probe["legacy"], probe["new"]
    print(f"{'':46s} {'legacy ' + old['mediapipe']:>22s} {'new ' + new['mediapipe']:>22s} "
          f"{'new/old':>8s}")
    print("faces found (frames or faces with a face / of)")
    for key in ("ckplus_found", "ckplus_followed"):
        row(f"  CK+ {key.split('_')[1]} ({new['ckplus_frames']} frames)", old[key], new[key])
    for key in [k for k in new if k.startswith("video ")]:
        row(f"  {key} (followed)", old[key][:2], new[key][:2], ratio=False)
    row("  AFEW sample clips (frames)", old["afew_sample_clips"][:2],
        new["afew_sample_clips"][:2], ratio=False)
    row("  VOC small faces: boxes found/of, others", old["voc_boxes"][:3], new["voc_boxes"][:3],
        ratio=False)
    row("  FER2013 48 px", old["fer2013_48"], new["fer2013_48"], ratio=False)
    row("  FER2013 enlarged to 192 px", old["fer2013_192"], new["fer2013_192"], ratio=False)
    for key in [k for k in new if k.startswith("photo ")]:
        row(f"  {key}", old[key], new[key], ratio=False)
    print("landmarks")
    row("  68 points vs dlib's, mean / IOD", old["mesh68_iod"][0], new["mesh68_iod"][0])
    row("  followed vs per-frame, mean % IOD", old["follow_vs_detect_iod_pct"],
        new["follow_vs_detect_iod_pct"])
    mean_r = r"^mean\s+([\d.]+)"
    row("FMPN masks, mean Pearson r (fmpn preset)", number(mean_r, masks["legacy"]),
        number(mean_r, masks["new"]))
    print("time, one core (ms a frame)")
    row("  CK+ frames, detected", old["ckplus_ms_per_frame_detect"],
        new["ckplus_ms_per_frame_detect"])
    row("  CK+ frames, followed", old["ckplus_ms_per_frame_follow"],
        new["ckplus_ms_per_frame_follow"])
    for key in [k for k in new if k.startswith("video ")]:
        row(f"  {key}", old[key][2], new[key][2])
    row("  VOC photos, s for 11", old["voc_boxes"][3], new["voc_boxes"][3])
    help_s, noop = r"^fer-prep --help\s+([\d.]+)", r"no-op re-run: ([\d.]+) %"
    row("fer-prep --help, s", number(help_s, startup["legacy"]), number(help_s, startup["new"]))
    row("no-op re-run, % of the first run", number(noop, startup["legacy"]),
        number(noop, startup["new"]))
    sys.stdout.flush()
    if not args.quick:
        speed = {"new": run(pythons["new"], "throughput.py", "--shared", shared),
                 "legacy": run(pythons["legacy"], "throughput.py", "--shared", shared,
                               "--no-seed")}
        print("throughput per core, marginal faces/s (bench/throughput.py; the seed, "
              "Emotion-FAN's method, runs once, in the new venv)")
        for title, section in (("video", 0), ("CK+ stills", 1)):
            rates = {k: marginals(v, section) for k, v in speed.items()}
            seed = rates["new"].get("Emotion-FAN seed")
            for label in [k for k in rates["new"] if k.startswith("fer-prep")]:
                old, new_rate = rates["legacy"].get(label), rates["new"][label]
                row(f"  {title}: {label}", old, new_rate)
                if seed:
                    row("    × the seed", old / seed if old else None, new_rate / seed,
                        ratio=False)
        for k in ("legacy", "new"):
            print(f"\n{k}: bench/throughput.py\n{speed[k]}")


if __name__ == "__main__":
    main()
