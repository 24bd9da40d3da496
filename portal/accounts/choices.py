from django.db import models


class Role(models.TextChoices):
    DATA_SCIENCE_LEAD = "data_science_lead", "Data science lead"
    PRIVACY_OFFICER = "privacy_officer", "Privacy officer"
    DEVOPS = "devops", "DevOps"
    AUDITOR = "auditor", "Auditor"
    MODEL_OWNER = "model_owner", "Model owner"
    PORTAL_ADMIN = "portal_admin", "Portal admin"


# The review board: the roles whose approvals gate a deployment.
BOARD_ROLES = frozenset({Role.DATA_SCIENCE_LEAD, Role.PRIVACY_OFFICER, Role.DEVOPS})

# Roles that only change with a second portal admin's approval: who approves, and who
# decides who approves.
FOUR_EYES_ROLES = BOARD_ROLES | {Role.PORTAL_ADMIN}
