"""The main navigation. Apps register their section; each says who may see it.

The base imports no app, so the sections name URL names and roles only.
"""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from portal.accounts.choices import Role

EVERYONE: frozenset[str] = frozenset()
ANY_ROLE: frozenset[str] = frozenset(Role)


@dataclass(frozen=True)
class Section:
    label: str
    url_name: str
    roles: frozenset[str]  # empty: every signed-in user
    prefix: str

    def visible_to(self, user: object) -> bool:
        return not self.roles or user.has_role(*self.roles)  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        try:
            return reverse(self.url_name)
        except NoReverseMatch:
            return "#"


SECTIONS: tuple[Section, ...] = (
    Section("Models", "governance:model_list", ANY_ROLE, "/models/"),
    Section(
        "Reviews",
        "governance:review_list",
        frozenset(
            {
                Role.DATA_SCIENCE_LEAD,
                Role.PRIVACY_OFFICER,
                Role.DEVOPS,
                Role.AUDITOR,
                Role.MODEL_OWNER,
                Role.PORTAL_ADMIN,
            }
        ),
        "/reviews/",
    ),
    Section("Training", "governance:run_list", ANY_ROLE, "/pipelines/"),
    Section("Rollouts", "governance:rollout_list", ANY_ROLE, "/rollouts/"),
    Section("Monitoring", "monitoring:overview", ANY_ROLE, "/monitoring/"),
    Section(
        "Data subjects",
        "datasubjects:request_list",
        frozenset({Role.PRIVACY_OFFICER, Role.AUDITOR, Role.PORTAL_ADMIN}),
        "/data-subjects/",
    ),
    Section("Audit", "audit:event_list", frozenset({Role.AUDITOR, Role.PORTAL_ADMIN}), "/audit/"),
    Section("Admin", "accounts:user_list", frozenset({Role.PORTAL_ADMIN}), "/manage/"),
)


def sections_for(user: object) -> list[Section]:
    if not getattr(user, "is_authenticated", False):
        return []
    return [section for section in SECTIONS if section.visible_to(user)]
