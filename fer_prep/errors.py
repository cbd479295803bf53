"""One error family: every mistake a user can make is a `FerPrepError` with a one-line message.

The CLI prints `Error: <message>` and exits 1 for these; any other exception is a bug and keeps
its traceback (DVC's `DvcException` rule). Messages name the file or option and the remedy.
Per-item problems (a corrupt frame, a video ffmpeg cannot read) are not errors of the run: they
become manifest rows with a status and a message (`fer_prep.images.UnreadableImage`,
`fer_prep.video.VideoError` carry those messages), and the run goes on.
"""

from __future__ import annotations

import errno


class FerPrepError(Exception):
    """A user mistake or an environment problem the user can fix; the message says how."""


class InputError(FerPrepError):
    """A dataset root, manifest, split file or stage input that is missing or wrong."""


class OptionError(FerPrepError):
    """An option or preset value that does not exist or is out of range."""


class FoldError(FerPrepError):
    """Folds that cannot be made as asked (too few subjects, a leak, a split that disagrees)."""


class StageNotReady(InputError):
    """A stage another one reads has not completed, or is stale."""


class WorkError(FerPrepError):
    """The work folder cannot be written: read-only, a file where a folder goes, disk full."""


class LockedError(FerPrepError):
    """Another run holds the stage folder."""


#: OS errors of the place being written, not of the item: the run stops and resumes later
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                errno.EPERM, errno.EIO})


def output_error(path: object, exc: OSError) -> WorkError:
    """The run-stopping error for an OS error while writing `path`."""
    return WorkError(f"{path}: cannot write ({exc.strerror or exc}); fix that and run the same "
                     "command again: what is finished is kept")
