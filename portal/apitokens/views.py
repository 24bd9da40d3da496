from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.accounts.permissions import may_manage_all_tokens, may_manage_tokens, user_passes
from portal.apitokens.forms import ApiTokenCreateForm
from portal.apitokens.models import ApiToken
from portal.apitokens.selectors import apitokens_visible_to
from portal.apitokens.services import apitoken_create, apitoken_revoke
from portal.audit.actors import client_ip_for_request


def _list_context(request: HttpRequest, form: ApiTokenCreateForm) -> dict:
    tokens = apitokens_visible_to(user=request.user, see_all=may_manage_all_tokens(request.user))
    page = Paginator(tokens, 25).get_page(request.GET.get("page"))
    return {"page": page, "form": form}


@user_passes(may_manage_tokens)
def token_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "apitokens/token_list.html",
        _list_context(request, ApiTokenCreateForm(owner=request.user)),
    )


@user_passes(may_manage_tokens)
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST, owner=request.user)
    if form.is_valid():
        try:
            issued = apitoken_create(
                name=form.cleaned_data["name"],
                owner=request.user,
                scopes=form.cleaned_data["scopes"],
                expires_at=form.cleaned_data["expires_at"],
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            # The secret is rendered once, in this response, and never stored.
            return render(request, "apitokens/token_created.html", {"issued": issued})
    return render(request, "apitokens/token_list.html", _list_context(request, form), status=400)


@user_passes(may_manage_tokens)
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    tokens = apitokens_visible_to(user=request.user, see_all=may_manage_all_tokens(request.user))
    token = get_object_or_404(tokens, pk=pk)
    try:
        apitoken_revoke(
            token=token, actor=request.user.audit_actor(), client_ip=client_ip_for_request(request)
        )
        messages.success(request, f"Token {token.name} ({token.prefix}) revoked.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("apitokens:list")


__all__ = ["ApiToken", "token_create", "token_list", "token_revoke"]
