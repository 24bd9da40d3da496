from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.accounts.forms import (
    CappedSetPasswordForm,
    EmailAuthenticationForm,
    RoleForm,
    UserCreateForm,
    UserFilterForm,
)
from portal.accounts.models import RoleGrant, User
from portal.accounts.permissions import may_manage_roles, user_passes
from portal.accounts.selectors import users_list
from portal.accounts.services import (
    role_grant,
    role_revoke,
    user_create,
    user_set_active,
    user_set_password_link_send,
)
from portal.audit.actors import client_ip_for_request
from portal.changes.configuration import password_login_allowed
from portal.changes.models import ChangeRequest
from portal.changes.selectors import changes_about_user


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not password_login_allowed():
            messages.error(request, "Password sign-in is switched off: sign in with Google.")
            return redirect("accounts:login")
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: object) -> dict:
        context = super().get_context_data(**kwargs)
        context["password_login_enabled"] = password_login_allowed()
        context["sso_enabled"] = settings.SSO_ENABLED
        context["sso_domain"] = settings.GOOGLE_WORKSPACE_DOMAIN
        return context


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """The one-time link a new person follows to choose their own password (Django's
    password reset confirmation: the token dies once the password is set)."""

    template_name = "accounts/set_password.html"
    form_class = CappedSetPasswordForm
    post_reset_login = False

    def dispatch(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not password_login_allowed():
            messages.error(request, "Password sign-in is switched off: sign in with Google.")
            return redirect("accounts:login")
        return super().dispatch(request, *args, **kwargs)

    def get_success_url(self) -> str:
        messages.success(self.request, "Your password is set: sign in with it.")
        return reverse("accounts:login")


def _first_error(exc: ValidationError) -> str:
    return (
        "; ".join(message for messages_ in exc.message_dict.values() for message in messages_)
        if hasattr(exc, "error_dict")
        else "; ".join(exc.messages)
    )


@user_passes(may_manage_roles)
def user_list(request: HttpRequest) -> HttpResponse:
    filters = UserFilterForm(request.GET or None)
    search = role = ""
    if filters.is_valid():
        search, role = filters.cleaned_data["q"], filters.cleaned_data["role"]
    page = Paginator(users_list(search=search, role=role), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "accounts/user_list.html",
        {
            "page": page,
            "filters": filters or UserFilterForm(),
            "create_form": UserCreateForm(),
            "machines": users_list(machines=True),
        },
    )


@user_passes(may_manage_roles)
@require_POST
def user_create_view(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST)
    if not form.is_valid():
        page = Paginator(users_list(), 25).get_page(1)
        return render(
            request,
            "accounts/user_list.html",
            {"page": page, "filters": UserFilterForm(), "create_form": form},
            status=400,
        )
    user = user_create(
        email=form.cleaned_data["email"],
        full_name=form.cleaned_data["full_name"],
        actor=request.user.audit_actor(),
        client_ip=client_ip_for_request(request),
        send_set_password_link=True,
    )
    messages.success(
        request,
        f"{user.email} created. They get a one-time link to set their password (or sign in "
        "with Google). Grant a role so they can work.",
    )
    return redirect("accounts:user_detail", pk=user.pk)


@user_passes(may_manage_roles)
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(User, pk=pk)
    grants = RoleGrant.objects.filter(user=person).select_related("granted_by", "revoked_by")
    return render(
        request,
        "accounts/user_detail.html",
        {
            "person": person,
            "grants": grants.order_by("-granted_at"),
            "role_form": RoleForm(),
            "changes": changes_about_user(user=person)[:20],
            "password_login": password_login_allowed(),
        },
    )


@user_passes(may_manage_roles)
@require_POST
def user_role_grant(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(User, pk=pk)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            outcome = role_grant(
                user=person,
                role=form.cleaned_data["role"],
                granted_by=request.user,
                client_ip=client_ip_for_request(request),
            )
            if isinstance(outcome, ChangeRequest):
                messages.success(
                    request,
                    f"Proposed: {outcome.summary}. It applies when another portal admin "
                    "approves it.",
                )
            else:
                messages.success(request, f"Role granted to {person.email}.")
        except ValidationError as exc:
            messages.error(request, _first_error(exc))
    else:
        messages.error(request, "Choose one of the listed roles.")
    return redirect("accounts:user_detail", pk=person.pk)


@user_passes(may_manage_roles)
@require_POST
def user_role_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(User, pk=pk)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            role_revoke(
                user=person,
                role=form.cleaned_data["role"],
                revoked_by=request.user,
                client_ip=client_ip_for_request(request),
            )
            messages.success(request, f"Role revoked from {person.email}.")
        except ValidationError as exc:
            messages.error(request, _first_error(exc))
    else:
        messages.error(request, "Choose one of the listed roles.")
    return redirect("accounts:user_detail", pk=person.pk)


@user_passes(may_manage_roles)
@require_POST
def user_toggle_active(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(User, pk=pk)
    try:
        user_set_active(
            user=person,
            active=not person.is_active,
            changed_by=request.user,
            client_ip=client_ip_for_request(request),
        )
        messages.success(
            request, f"{person.email} is now {'active' if person.is_active else 'deactivated'}."
        )
    except ValidationError as exc:
        messages.error(request, _first_error(exc))
    return redirect("accounts:user_detail", pk=person.pk)


@user_passes(may_manage_roles)
@require_POST
def user_set_password_link(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(User, pk=pk)
    try:
        user_set_password_link_send(
            user=person, actor=request.user.audit_actor(), client_ip=client_ip_for_request(request)
        )
    except ValidationError as exc:
        messages.error(request, _first_error(exc))
    else:
        messages.success(request, f"A new set-password link went to {person.email}.")
    return redirect("accounts:user_detail", pk=person.pk)
