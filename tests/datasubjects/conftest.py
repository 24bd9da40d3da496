"""Fixtures for data subject requests: filing one the way the public form does and
reading the code from the e-mail it sends."""

import re
from datetime import datetime

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from datasubjects.choices import RequestKind
from datasubjects.models import DataSubjectRequest
from datasubjects.services import request_file, request_verify
from portal.accounts.choices import Role

SUBJECT = "customer-1@example.com"


def last_code(to: str) -> str:
    """The code in the last e-mail sent to `to`."""
    for message in reversed(mail.outbox):
        if to in message.to and "verification code" in message.subject:
            return re.search(r"\b(\d{6})\b", message.body).group(1)
    raise AssertionError(f"no code was e-mailed to {to}")


@pytest.fixture()
def file_request(db, django_capture_on_commit_callbacks):
    def file(
        *, email: str = SUBJECT, kind: str = RequestKind.ACCESS, **kwargs
    ) -> DataSubjectRequest:
        with django_capture_on_commit_callbacks(execute=True):
            filed = request_file(kind=kind, email=email, **kwargs)
        return filed.request

    return file


@pytest.fixture()
def verified_request(file_request, django_capture_on_commit_callbacks):
    """A request filed and verified at `at` (a local date and time)."""

    def make(at: datetime | None = None, **kwargs) -> DataSubjectRequest:
        at = at or timezone.localtime()
        if timezone.is_naive(at):
            at = timezone.make_aware(at)
        with time_machine.travel(at, tick=False):
            dsr = file_request(**kwargs)
            with django_capture_on_commit_callbacks(execute=True):
                request_verify(request=dsr, code=last_code(dsr.code_recipient))
        dsr.refresh_from_db()
        return dsr

    return make


@pytest.fixture()
def privacy_officer(make_user):
    return make_user(Role.PRIVACY_OFFICER)
