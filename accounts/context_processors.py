from accounts.selectors import user_roles


def roles(request):
    """`nav_roles` for templates: the navigation shows what each role can reach."""
    user = getattr(request, "user", None)
    return {"nav_roles": user_roles(user=user) if user is not None else set()}
