"""Stages: functions from (manifest, parameters) to (files, manifest). They know faces, not datasets."""
