"""Intake quality control in the platform: per-dataset detectors (``ml.qc``), scores, review.

- `training`: train a dataset's detectors on its own accepted images (Celery worker only);
- `scoring`: score one image on intake, or a whole dataset, and quarantine what is flagged;
- `services`: the one function that settles a flag (QC grid and clinician review both call it),
  applying the suggested fix to the stored pixels only when a reviewer accepts it;
- `selectors`, `views`: the per-dataset thumbnail grid.

torch is imported only inside `training` and `scoring` functions (through ``ml.qc``).
"""
