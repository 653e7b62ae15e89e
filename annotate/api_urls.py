from django.urls import path

from annotate import apis

urlpatterns = [
    path("datasets/", apis.DatasetListApi.as_view(), name="api-dataset-list"),
]
