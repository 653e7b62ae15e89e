from django.urls import path

from annotate import views

app_name = "annotate"

urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("images/<uuid:public_id>/", views.image_file, name="image-file"),
    path("images/<uuid:public_id>/thumb/", views.image_thumbnail, name="image-thumbnail"),
    path("<slug:slug>/", views.dataset_detail, name="dataset-detail"),
]
