"""The project's URL map: the top, which includes every app."""

from django.contrib import admin
from django.urls import include, path

from governance.reviews.api_urls import gate_urlpatterns
from portal.admin_readonly import admin_site_read_only

admin.site.site_header = "Governance portal: Django admin"
# Shown, never edited there, and only to portal admins (auditors: the ledger): periodic
# tasks, SSO links, groups, lockouts and the rest change in the portal, where every
# change is audited. Signing in goes through the portal's own login.
admin_site_read_only(admin.site)

urlpatterns = [
    # The deployment gate first, then the governance API: CI's calls are the portal's
    # busiest requests, and Django tries the patterns in order.
    *gate_urlpatterns,
    path("", include("governance.api.urls")),
    path("", include("portal.ui.urls")),
    path("", include("portal.accounts.urls")),
    path("", include("portal.apitokens.urls")),
    path("", include("portal.audit.urls")),
    path("", include("portal.security.urls")),
    path("", include("portal.health.urls")),
    path("", include("portal.notify.urls")),
    path("", include("portal.changes.urls")),
    path("", include("portal.exports.urls")),
    path("", include("portal.api.urls")),
    path("", include("governance.urls")),
    path("", include("monitoring.urls")),
    path("", include("datasubjects.urls")),
    path("", include("social_django.urls", namespace="social")),
    path("django-admin/", admin.site.urls),
]

handler403 = "portal.ui.views.error_403"
handler404 = "portal.ui.views.error_404"
handler500 = "portal.ui.views.error_500"
