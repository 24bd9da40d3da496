from django.urls import path

from datasubjects import views

app_name = "datasubjects"

urlpatterns = [
    # Public: the only pages open without signing in (see tests/portal/test_refusals.py).
    path("privacy/", views.public_privacy_notice, name="privacy_notice"),
    path("privacy/requests/new/", views.public_request_new, name="public_request_new"),
    path("privacy/requests/<uuid:public_id>/verify/", views.public_verify, name="public_verify"),
    path(
        "privacy/requests/<uuid:public_id>/resend/",
        views.public_code_resend,
        name="public_code_resend",
    ),
    path("privacy/requests/status/<str:token>/", views.public_status, name="public_status"),
    path("privacy/requests/package/<str:token>/", views.public_package, name="public_package"),
    # Privacy officers, auditors, portal admins.
    path("data-subjects/", views.request_list, name="request_list"),
    path("data-subjects/sources/", views.source_list, name="source_list"),
    path("data-subjects/consent/", views.consent_list, name="consent_list"),
    path("data-subjects/consent.csv", views.consent_export, name="consent_export"),
    path("data-subjects/consent/record", views.consent_record_new, name="consent_record"),
    path("data-subjects/suppression/", views.suppression_list, name="suppression_list"),
    path(
        "data-subjects/suppression/<int:pk>/lift",
        views.suppression_lift,
        name="suppression_lift",
    ),
    path("data-subjects/sources/new", views.source_edit, name="source_new"),
    path("data-subjects/sources/<slug:slug>/edit", views.source_edit, name="source_edit"),
    path("data-subjects/sources/<slug:slug>/check", views.source_check, name="source_check"),
    path("data-subjects/<uuid:public_id>/", views.request_detail, name="request_detail"),
    path("data-subjects/<uuid:public_id>/assign", views.request_assign, name="request_assign"),
    path("data-subjects/<uuid:public_id>/package", views.request_package, name="request_package"),
    path(
        "data-subjects/<uuid:public_id>/certificate.pdf",
        views.request_certificate,
        name="request_certificate",
    ),
    path(
        "data-subjects/<uuid:public_id>/evidence-pack",
        views.request_evidence_pack,
        name="request_evidence_pack",
    ),
    path("data-subjects/<uuid:public_id>/state", views.request_state, name="request_state"),
    path("data-subjects/<uuid:public_id>/extend", views.request_extend, name="request_extend"),
    path("data-subjects/<uuid:public_id>/refuse", views.request_refuse, name="request_refuse"),
    path(
        "data-subjects/<uuid:public_id>/duplicate",
        views.request_duplicate,
        name="request_duplicate",
    ),
    path(
        "data-subjects/<uuid:public_id>/tasks/<int:task_id>/manual",
        views.task_record_manual,
        name="task_record_manual",
    ),
]
