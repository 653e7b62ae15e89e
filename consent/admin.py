from django.contrib import admin, messages

from consent.models import AuditEvent, Consent, ConsentForm, Donor, IntakeBatch, IntakeItem
from consent.services.consents import (
    consent_form_create,
    consent_form_new_version,
    consent_form_publish,
    consent_form_update,
)
from tessera.admin import ReadOnlyAdmin
from tessera.errors import ApplicationError


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "target_type", "target_id", "actor_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["target_id", "action"]


@admin.register(Donor)
class DonorAdmin(admin.ModelAdmin):
    list_display = ["pseudonym", "created_at"]
    search_fields = ["pseudonym"]
    exclude = ["revocation_code_hash"]


@admin.register(ConsentForm)
class ConsentFormAdmin(admin.ModelAdmin):
    """Drafts are edited here; a published form is read-only (publish a new version instead).

    Writes go through the consent services, so the admin enforces the same rules as the API.
    """

    list_display = ["slug", "version", "language", "title", "published_at"]
    list_filter = ["slug", "language"]
    fields = ["slug", "language", "title", "text", "purposes", "version", "published_at"]
    readonly_fields = ["version", "published_at"]
    actions = ["publish", "new_version"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is not None and obj.is_published:
            return self.fields
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is not None and not obj.is_published and not obj.consents.exists()

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        try:
            if change:
                consent_form_update(
                    form=obj,
                    actor_id=request.user.pk,
                    **{name: form.cleaned_data[name] for name in form.changed_data},
                )
            else:
                created = consent_form_create(
                    slug=obj.slug,
                    title=obj.title,
                    text=obj.text,
                    purposes=obj.purposes,
                    language=obj.language,
                    actor_id=request.user.pk,
                )
                obj.pk, obj.version = created.pk, created.version
        except ApplicationError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)

    @admin.action(description="Publish (the form can no longer change)")
    def publish(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for form in queryset:
            try:
                consent_form_publish(form=form, actor_id=request.user.pk)
            except ApplicationError as exc:
                self.message_user(request, f"{form}: {exc.message}", level=messages.WARNING)

    @admin.action(description="Create a new draft version")
    def new_version(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for form in queryset:
            consent_form_new_version(form=form, actor_id=request.user.pk)


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = ["donor", "form", "status", "method", "given_at", "period_end"]
    list_filter = ["status", "method", "scope"]


@admin.register(IntakeBatch)
class IntakeBatchAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "dataset", "created_at"]


@admin.register(IntakeItem)
class IntakeItemAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "batch", "status", "code", "created_at"]
    list_filter = ["status", "code"]
    exclude = ["name", "upload"]
