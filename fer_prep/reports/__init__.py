"""Views of a work folder, read-only: `status` (each dataset's stages, and the command to run
next) and `report` (one self-contained HTML page to check the work by eye). Nothing here runs a
stage or writes into one."""
