"""Adapters: one module per dataset, reading its original published layout into a samples table.

A samples table has one row per source item (`sample_id`, `dataset`, `subject`, `sequence`,
`frame`, `role`, `label`, `label_code`, `source_path`, `status`, `message`). A row the adapter
cannot use keeps its place with `status` saying why. Adapters know datasets, never faces.
"""
