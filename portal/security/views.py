from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from portal.accounts.permissions import may_read_audit, user_passes
from portal.security.selectors import refusal_windows_list


@user_passes(may_read_audit)
def refusal_list(request: HttpRequest) -> HttpResponse:
    """Refused requests, counted per kind, source and window, with the audit event that
    kept each window's first occurrence."""
    kind = request.GET.get("kind", "").strip()[:80]
    source = request.GET.get("source", "").strip()[:80]
    windows = refusal_windows_list(kind=kind, source=source)
    page = Paginator(windows, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "security/refusal_list.html",
        {
            "page": page,
            "kind": kind,
            "source": source,
            "query": urlencode({k: v for k, v in (("kind", kind), ("source", source)) if v}),
        },
    )
