from django.urls import path

from annotate import apis

urlpatterns = [
    path("datasets/", apis.DatasetListApi.as_view(), name="api-dataset-list"),
    path("images/<uuid:public_id>/report/", apis.ImageReportApi.as_view(), name="api-image-report"),
    path("review/items/", apis.ReviewItemListApi.as_view(), name="api-review-list"),
    path(
        "review/items/claim-next/",
        apis.ReviewClaimNextApi.as_view(),
        name="api-review-claim-next",
    ),
    path(
        "review/items/<int:item_id>/claim/", apis.ReviewClaimApi.as_view(), name="api-review-claim"
    ),
    path(
        "review/items/<int:item_id>/release/",
        apis.ReviewReleaseApi.as_view(),
        name="api-review-release",
    ),
    path(
        "review/items/<int:item_id>/decisions/",
        apis.ReviewDecisionCreateApi.as_view(),
        name="api-review-decide",
    ),
    path("exports/", apis.ExportListApi.as_view(), name="api-export-list"),
    path("exports/create/", apis.ExportCreateApi.as_view(), name="api-export-create"),
    path("exports/<int:export_id>/", apis.ExportDetailApi.as_view(), name="api-export-detail"),
    path(
        "exports/<int:export_id>/download/",
        apis.ExportDownloadApi.as_view(),
        name="api-export-download",
    ),
]
