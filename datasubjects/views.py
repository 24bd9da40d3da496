from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.choices import Role
from portal.accounts.permissions import user_passes


@user_passes(lambda user: user.has_role(Role.PRIVACY_OFFICER, Role.AUDITOR, Role.PORTAL_ADMIN))
def request_list(request: HttpRequest) -> HttpResponse:
    return render(request, "datasubjects/request_list.html")
