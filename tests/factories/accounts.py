"""factory_boy factories of the portal's base: people and their roles."""

import factory

from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant, User

DEFAULT_PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@zeromargin.example")
    full_name = factory.Faker("name")
    password = factory.django.Password(DEFAULT_PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        if create and extracted:
            for role in extracted:
                RoleGrant.objects.create(user=self, role=Role(role))
            self.__dict__.pop("roles", None)
