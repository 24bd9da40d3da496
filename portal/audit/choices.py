from django.db import models


class ActorType(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "API token"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Anonymous"


class ExportState(models.TextChoices):
    IDLE = "idle", "Idle"
    SENDING = "sending", "Sending"
