from django.urls import path

from accounts import apis

urlpatterns = [
    path("auth/token/", apis.TokenObtainApi.as_view(), name="api-token-obtain"),
    path("me/", apis.MeApi.as_view(), name="api-me"),
]
