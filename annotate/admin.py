from django.contrib import admin

from annotate.models import Annotation, Dataset, Image, LabelClass


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task", "is_active"]
    inlines = [LabelClassInline]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["public_id", "dataset", "status", "gold_class", "width", "height"]
    list_filter = ["dataset", "status"]
    raw_id_fields = ["donor", "consent"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["image", "player", "label_class", "source", "created_at", "is_counted"]
    list_filter = ["source", "is_counted"]
    raw_id_fields = ["image", "player"]
