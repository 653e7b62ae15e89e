from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User


@admin.register(User)
class TesseraUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("Tessera", {"fields": ("display_name",)}))
    list_display = ["username", "display_name", "is_staff", "is_active", "date_joined"]
