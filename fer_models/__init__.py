"""fer_models: the thin training module over fer-prep's manifests (`fer-train`), to be built."""
