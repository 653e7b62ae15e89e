"""Researcher export: one builder behind the web page, the API and `manage.py export_dataset`.

`images_exportable` is the consent filter, `export_request`/`export_build` make a versioned
snapshot, `exports_mark_withdrawn` marks snapshots after a donor withdraws.
"""

from annotate.export.selection import ExportFilters, export_rows, images_exportable
from annotate.export.services import export_build, export_request, exports_mark_withdrawn

__all__ = [
    "ExportFilters",
    "export_build",
    "export_request",
    "export_rows",
    "exports_mark_withdrawn",
    "images_exportable",
]
