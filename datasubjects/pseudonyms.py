"""Pseudonymous names for a person, derived from SECRET_KEY (GDPR Art. 4(5): the
key that links them back is kept apart from the data).

- `subject_ref_for(email)`: a keyed hash of the address; how requests, the ledger and
  the consent ledger name the person;

- `customer_key(id)`: a keyed hash, one way; what the suppression list and the
  consent ledger keep, and what the pipelines and the model server compare against
  (the same HMAC as `pipelines.suppression.customer_key`, with `suppression_key()`,
  a secret the list's readers share).
- `customer_ids_seal(ids)` / `customer_ids_unseal(token)`: the ids encrypted (Fernet)
  while a request still needs to search the sources by them.
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.utils.crypto import salted_hmac


def subject_ref_for(email: str) -> str:
    """The pseudonymous id of the person behind an e-mail address (keyed, not reversible
    without SECRET_KEY; the same address always gives the same id)."""
    return salted_hmac("datasubjects.subject", email.strip().lower()).hexdigest()


def suppression_key() -> bytes:
    """The key of customer keys: DSAR_SUPPRESSION_KEY, or (unset) 32 bytes derived from
    SECRET_KEY. A secret: the suppression list file names it by id only, its readers
    get it as a secret of their own."""
    if settings.DSAR_SUPPRESSION_KEY:
        return bytes.fromhex(settings.DSAR_SUPPRESSION_KEY.strip())
    return salted_hmac("datasubjects.suppression-key", "customer ids", algorithm="sha256").digest()


def customer_key(customer_id: object) -> str:
    """The keyed hash (HMAC-SHA256, 64 hex) of a customer id."""
    return hmac.new(suppression_key(), str(customer_id).encode(), hashlib.sha256).hexdigest()


def _fernet() -> Fernet:
    raw = salted_hmac("datasubjects.seal", "customer ids", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(raw))


def customer_ids_seal(ids: Iterable[str]) -> str:
    """The ids (sorted, deduplicated) encrypted and authenticated, as text."""
    return _fernet().encrypt(json.dumps(sorted(set(map(str, ids)))).encode()).decode()


def customer_ids_unseal(token: str) -> list[str]:
    """The ids a seal holds; ValueError for a seal this key did not make."""
    if not token:
        return []
    try:
        return list(json.loads(_fernet().decrypt(token.encode())))
    except InvalidToken as error:
        raise ValueError("the sealed customer ids do not open with this key") from error
