from django.urls import path

from consent import views

app_name = "consent"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("forms/<int:form_id>/sign/", views.consent_sign, name="sign"),
    path("forms/<int:form_id>/record/", views.paper_consent, name="paper"),
    path("<int:consent_id>/withdraw/", views.consent_withdraw_view, name="withdraw"),
    path("withdraw/", views.withdraw_with_code, name="withdraw-with-code"),
    path("images/", views.my_images, name="my-images"),
    path("upload/", views.upload, name="upload"),
    path("uploads/<uuid:public_id>/", views.batch, name="batch"),
    path("review/", views.review_list, name="review-list"),
    path("review/<uuid:public_id>/", views.review_item, name="review-item"),
]
