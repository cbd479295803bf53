"""fer-prep: public facial-expression datasets → frames, aligned faces, landmarks, masks, folds."""

__version__ = "0.1.0"
