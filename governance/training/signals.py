"""What training announces to the apps above it, without knowing who listens.

`version_trained` is sent inside the registration's transaction when a training run
registers a new version, with keyword arguments `version` (the ModelVersion) and
`serving_reference` (feature -> sample of training values the model server will see,
`pipelines.reference`). Monitoring connects a receiver in its AppConfig.ready() and
stores the reference drift is scored against. A receiver's exception rolls the
registration back, so receivers only write their own rows.
"""

from django.dispatch import Signal

version_trained = Signal()
