from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.choices import Role
from portal.accounts.permissions import user_passes

REVIEW_READERS = (
    Role.DATA_SCIENCE_LEAD,
    Role.PRIVACY_OFFICER,
    Role.DEVOPS,
    Role.AUDITOR,
    Role.MODEL_OWNER,
    Role.PORTAL_ADMIN,
)


@user_passes(lambda user: user.has_role(*REVIEW_READERS))
def review_list(request: HttpRequest) -> HttpResponse:
    return render(request, "reviews/review_list.html")
