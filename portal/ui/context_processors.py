from django.http import HttpRequest

from portal.ui.navigation import sections_for


def shell(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    sections = sections_for(user) if user is not None else []
    return {
        "nav_sections": [
            {"label": s.label, "url": s.url, "active": request.path.startswith(s.prefix)}
            for s in sections
        ],
    }
