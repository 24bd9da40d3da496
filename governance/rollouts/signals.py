"""What rollouts announce to the apps above them, without knowing who listens.

`rollout_rolled_back` is sent inside the transaction that decided a rollback (the
canary analysis failing, a person rolling back, or the outside system reporting the
rollout failed, after which its target is rolled back), after the rollout's row lock and
before the audit chain head is taken by anyone else's write in it. Monitoring connects
a receiver in `MonitoringConfig.ready()` that opens an incident; a receiver's write
commits or rolls back with the rollback itself.

Arguments: `rollout` (the Rollout, state rolled_back or failed), `automatic` (True when the
canary analysis decided it), `reason` (text), `analysis` (the failed analysis as a
dict, or None), `actor` (portal.audit.actors.Actor).
"""

from django.dispatch import Signal

rollout_rolled_back = Signal()
