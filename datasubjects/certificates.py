"""The certificate of erasure: a PDF (WeasyPrint, as the card PDFs) stating what was
erased in each source, what a legal hold kept and why, what the verification queries
found, and which model versions were trained on the person's data. Names the person
only by the request's public id and pseudonymous id."""

from django.template.loader import render_to_string
from django.utils import timezone

from datasubjects.choices import TaskAction
from datasubjects.models import DataSubjectRequest


def erasure_certificate_pdf(*, request: DataSubjectRequest) -> bytes:
    """The certificate as PDF bytes (no side effects)."""
    from weasyprint import HTML  # -- slow

    tasks = request.tasks.filter(action=TaskAction.ERASURE).select_related("source")
    html = render_to_string(
        "datasubjects/certificate.html",
        {"dsr": request, "tasks": tasks, "issued_at": timezone.now()},
    )
    return HTML(string=html).write_pdf()
