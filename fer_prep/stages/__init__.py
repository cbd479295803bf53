"""Stages: functions (manifest, parameters) → (files, manifest). They know faces, not datasets."""
