"""A dataset made larger without copying a byte: the shared CK+ linked several times under
other subject names, for the runs that must last (a walltime reached mid-run) and for the
benchmarks (`bench/throughput.py`, `bench/clusters.py`)."""

from __future__ import annotations

from pathlib import Path


def link_ckplus(root: Path, ckplus: Path, copies: int) -> Path:
    """A CK+ tree under `root` holding every subject `copies` times (S052, S052c1, …)."""
    for part in ("cohn-kanade-images", "Emotion"):
        (root / part).mkdir(parents=True)
        for subject in sorted((ckplus / part).iterdir()):
            for k in range(copies):
                name = subject.name if k == 0 else f"S{900 + 10 * k + int(subject.name[-1])}"
                (root / part / name).mkdir()
                for seq in sorted(subject.iterdir()):
                    (root / part / name / seq.name).mkdir()
                    for f in sorted(seq.iterdir()):
                        (root / part / name / seq.name / f.name.replace(subject.name, name)
                         ).symlink_to(f.resolve())
    return root
