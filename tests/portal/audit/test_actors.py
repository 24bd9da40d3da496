"""How rows that remember who asked name an actor: `Actor.ref`, and back."""

from portal.audit.actors import Actor
from portal.audit.choices import ActorType


def test_actor_ref_is_type_and_id_or_the_type_alone():
    """A system component or a user is `type:id`; an anonymous caller is its type."""
    assert Actor.system("worker").ref == f"{ActorType.SYSTEM}:worker"
    assert Actor(ActorType.USER, "42").ref == f"{ActorType.USER}:42"
    assert Actor.anonymous().ref == str(ActorType.ANONYMOUS)


def test_actor_from_ref_reads_a_ref_back_or_gives_the_default():
    """A stored ref names the same actor again; an empty one gives the default."""
    worker = Actor.system("worker")
    assert Actor.from_ref(worker.ref, default=Actor.anonymous()) == worker
    assert Actor.from_ref("", default=worker) == worker
