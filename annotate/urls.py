from django.urls import path

from annotate import views
from annotate.qc import views as qc_views

app_name = "annotate"

urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("images/<uuid:public_id>/", views.image_file, name="image-file"),
    path("images/<uuid:public_id>/thumb/", views.image_thumbnail, name="image-thumbnail"),
    # Before "<slug:slug>/": these names are not dataset slugs.
    path("review/", views.review_queue_page, name="review-queue"),
    path("review/next/", views.review_next, name="review-next"),
    path("review/<int:item_id>/", views.review_item_page, name="review-item"),
    path("review/<int:item_id>/claim/", views.review_claim_view, name="review-claim"),
    path("review/<int:item_id>/release/", views.review_release_view, name="review-release"),
    path("review/<int:item_id>/decide/", views.review_decide_view, name="review-decide"),
    path(
        "review/<int:item_id>/probability.png",
        views.review_probability_png,
        name="review-probability",
    ),
    path("exports/", views.export_page, name="export-list"),
    path("exports/<int:export_id>/datasheet/", views.export_datasheet, name="export-datasheet"),
    path("<slug:slug>/", views.dataset_detail, name="dataset-detail"),
    path("<slug:slug>/model/", views.dataset_model, name="dataset-model"),
    path("<slug:slug>/model/train/", views.dataset_model_train, name="dataset-model-train"),
    path("<slug:slug>/qc/", qc_views.qc_page, name="dataset-qc"),
    path("<slug:slug>/qc/train/", qc_views.qc_train_view, name="dataset-qc-train"),
    path("<slug:slug>/qc/score/", qc_views.qc_score_view, name="dataset-qc-score"),
    path("<slug:slug>/qc/<uuid:public_id>/", qc_views.qc_decide_view, name="dataset-qc-decide"),
]
