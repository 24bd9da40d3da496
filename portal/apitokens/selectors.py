from django.db.models import QuerySet

from portal.apitokens.models import ApiToken


def apitokens_visible_to(*, user: object, see_all: bool) -> QuerySet[ApiToken]:
    tokens = ApiToken.objects.select_related("owner")
    return tokens if see_all else tokens.filter(owner=user)
