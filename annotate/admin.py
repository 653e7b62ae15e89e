from django.contrib import admin

from annotate.models import (
    Annotation,
    Consensus,
    ConsensusRun,
    Dataset,
    Export,
    GoldMask,
    Image,
    LabelClass,
    PlayerSkill,
    ReviewDecision,
    ReviewItem,
)
from tessera.admin import ReadOnlyAdmin


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task", "is_active"]
    inlines = [LabelClassInline]


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    """Images enter only through intake (de-identification) and leave through withdrawal or a
    clinician's decision, each audited: the admin shows them, it never adds, edits or deletes."""

    list_display = ["public_id", "dataset", "status", "gold_class", "width", "height"]
    list_filter = ["dataset", "status"]
    search_fields = ["public_id", "sha256"]


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    """Labels come from the games with idempotency keys; consensus depends on every one."""

    list_display = ["image", "player", "label_class", "source", "created_at", "is_counted"]
    list_filter = ["source", "is_counted"]
    list_select_related = ["image", "player", "label_class"]


@admin.register(ConsensusRun)
class ConsensusRunAdmin(admin.ModelAdmin):
    list_display = [
        "dataset",
        "kind",
        "method",
        "n_answers",
        "n_images",
        "n_retired",
        "finished_at",
    ]
    list_filter = ["dataset", "kind"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Consensus)
class ConsensusAdmin(admin.ModelAdmin):
    list_display = ["image", "label_class", "confidence", "n_labels", "n_players", "updated_at"]
    raw_id_fields = ["image"]


@admin.register(PlayerSkill)
class PlayerSkillAdmin(admin.ModelAdmin):
    list_display = ["player", "dataset", "accuracy", "spammer_score", "n_labels", "is_flagged"]
    list_filter = ["dataset", "is_flagged"]
    raw_id_fields = ["player"]


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["image", "reason", "status", "priority", "created_at"]
    list_filter = ["reason", "status"]
    raw_id_fields = ["image"]


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(admin.ModelAdmin):
    list_display = ["item", "clinician", "stage", "action", "created_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["dataset", "version", "status", "created_at"]
    list_filter = ["dataset", "status"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GoldMask)
class GoldMaskAdmin(admin.ModelAdmin):
    list_display = ["image", "source", "created_at"]
    raw_id_fields = ["image"]
