from django.urls import path

from consent import apis

urlpatterns = [
    path("consent/forms/", apis.ConsentFormListApi.as_view(), name="api-consent-forms"),
    path("consent/consents/", apis.ConsentListApi.as_view(), name="api-consent-list"),
    path("consent/consents/give/", apis.ConsentGiveApi.as_view(), name="api-consent-give"),
    path("consent/paper/", apis.PaperConsentRecordApi.as_view(), name="api-consent-paper"),
    path(
        "consent/consents/<int:consent_id>/withdraw/",
        apis.ConsentWithdrawApi.as_view(),
        name="api-consent-withdraw",
    ),
    path(
        "consent/withdraw-with-code/",
        apis.WithdrawWithCodeApi.as_view(),
        name="api-consent-withdraw-code",
    ),
    path("consent/my-images/", apis.DonorImageListApi.as_view(), name="api-donor-images"),
    path("intake/batches/", apis.IntakeBatchCreateApi.as_view(), name="api-intake-create"),
    path(
        "intake/batches/<uuid:public_id>/",
        apis.IntakeBatchProgressApi.as_view(),
        name="api-intake-batch",
    ),
    path("intake/review/", apis.IntakeReviewListApi.as_view(), name="api-intake-review"),
    path(
        "intake/review/<uuid:public_id>/",
        apis.IntakeReviewDecideApi.as_view(),
        name="api-intake-review-decide",
    ),
]
