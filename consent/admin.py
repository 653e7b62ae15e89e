from django.contrib import admin

from consent.models import AuditEvent, Consent, ConsentForm, Donor


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "target_type", "target_id", "actor_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["target_id", "action"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Donor)
class DonorAdmin(admin.ModelAdmin):
    list_display = ["pseudonym", "created_at"]
    search_fields = ["pseudonym"]
    exclude = ["revocation_code_hash"]


@admin.register(ConsentForm)
class ConsentFormAdmin(admin.ModelAdmin):
    list_display = ["slug", "version", "language", "title", "published_at"]


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ["donor", "form", "status", "method", "period_start", "period_end"]
    list_filter = ["status", "method"]
