"""fer_models: the thin training module over fer-prep's manifests (`fer-train`).

`inputs` reads the faces, folds and masks stages (never a dataset folder); `data` makes PyTorch
datasets of single faces and of clips over them; `models` registers the seeds' models by name;
`train` is the loop (metrics, checkpoints, resume); `report` the table and confusion matrices;
`cli` the click command over `train.train`.
"""
