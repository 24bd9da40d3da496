#!/usr/bin/env python3
"""Verify an exported audit trail offline against a signed checkpoint.

Needs Python 3.11 and one package, cryptography (`pip install cryptography`); no access
to the portal. Inputs, saved beforehand by someone allowed to read the audit trail:

    events.json      the trail from the first event on: /audit/export.json with no filter
    checkpoint.json  GET /api/v1/audit/checkpoint, or `manage.py audit_checkpoint --export`
    jwks.json        the portal's public keys, /.well-known/jwks.json

    verify-audit.py --events events.json --checkpoint checkpoint.json --jwks jwks.json

A filtered view of the trail (an object's timeline, a period, one actor) is checked
from its export with inclusion proofs, /audit/export.proofs.json?<filters>, which
carries the checkpoint its proofs are against:

    verify-audit.py --proofs proofs.json --jwks jwks.json [--checkpoint checkpoint.json]

It checks that a published key signed that checkpoint (and, given --checkpoint, that it
is the same one); that each event's hash is recomputed from its fields and its previous
hash, that every payload not redacted matches its digest, that events next to each
other in the export chain; and that each event's RFC 9162 inclusion proof leads from
its leaf to the signed root: every exported event is in the ledger, unchanged, at its
place. A filtered export cannot show that the filter left nothing out: for that, verify
the whole trail as above.

It checks that a published key signed the checkpoint; that the events run 1, 2, 3, ...
with each one's hash recomputed from its fields and chained to the one before; that
every payload not redacted matches the digest in the chain; and that the Merkle tree
(RFC 9162: leaf = SHA-256(0x00 || chain hash), node = SHA-256(0x01 || left || right))
over the first `tree_size` events has the signed root, so no event the checkpoint
covers was edited, reordered or removed.

Exit status: 0 when all of that holds; 1 when something does not (the first problem is
printed); 2 on a usage error or an unreadable file.
"""

import argparse
import base64
import hashlib
import json
import sys
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

CHECKPOINT_TYPE = "audit-checkpoint+jwt"
PROOF_BUNDLE_TYPE = "audit-events-with-proofs"
GENESIS_HASH = "0" * 64
EXIT_INVALID = 1
EXIT_USAGE = 2


class Refused(Exception):
    pass


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text: str) -> int:
    return int.from_bytes(_b64url(text), "big")


def _signature_holds(jwk: dict, alg: str, signing_input: bytes, signature: bytes) -> bool:
    try:
        if alg == "EdDSA" and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            key = ed25519.Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"]))
            key.verify(signature, signing_input)
        elif alg == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            numbers = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1())
            if len(signature) != 64:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            numbers.public_key().verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        elif alg == "RS256" and jwk.get("kty") == "RSA":
            key = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except (InvalidSignature, KeyError, ValueError):
        return False
    return True


def checkpoint_claims(document: dict, jwks: dict) -> dict:
    """The signed claims of an exported checkpoint, if a key of `jwks` signed them."""
    if not isinstance(document, dict):
        raise Refused("the checkpoint is not a JSON object")
    statement = document.get("statement")
    if document.get("type") != "audit-checkpoint" or not isinstance(statement, str):
        raise Refused("the checkpoint file is not an exported audit checkpoint")
    try:
        header_b64, claims_b64, signature_b64 = statement.split(".")
        header = json.loads(_b64url(header_b64))
        claims = json.loads(_b64url(claims_b64))
        signature = _b64url(signature_b64)
    except ValueError as exc:
        raise Refused(f"the checkpoint's statement is not a compact JWS: {exc}") from exc
    if header.get("typ") != CHECKPOINT_TYPE:
        raise Refused(f"the statement's typ is {header.get('typ')!r}, not {CHECKPOINT_TYPE!r}")
    keys = [key for key in jwks.get("keys", []) if key.get("kid") == header.get("kid")]
    if not keys:
        raise Refused(f"no published key has kid {header.get('kid')!r}")
    # The algorithm must be the published key's, never only what the header says.
    if keys[0].get("alg") != header.get("alg"):
        raise Refused(f"algorithm {header.get('alg')!r} does not match the published key")
    signing_input = f"{header_b64}.{claims_b64}".encode()
    if not _signature_holds(keys[0], header["alg"], signing_input, signature):
        raise Refused("the checkpoint's signature does not hold")
    for field in ("tree_size", "root_hash", "head_hash"):
        if document.get(field) != claims.get(field):
            raise Refused(f"the file's {field} disagrees with its signed statement")
    if not isinstance(claims.get("tree_size"), int) or claims["tree_size"] < 1:
        raise Refused("the signed tree_size is not a whole number of at least 1")
    return claims


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: dict, prev_hash: str) -> str:
    """The chain hash of an event, as portal/audit/hashing.py computes it."""
    occurred_at = datetime.fromisoformat(event["occurred_at"]).astimezone(UTC)
    actor_type, _, actor_id = event["actor"].partition(":")
    body = {
        "sequence": event["sequence"],
        "occurred_at": occurred_at.isoformat(timespec="microseconds"),
        "actor": [actor_type, actor_id],
        "action": event["action"],
        "object": [event["object_type"], event["object_id"]],
        "payload_digest": event["payload_digest"],
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(_canonical(body)).hexdigest()


def _leaf(chain_hash: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(chain_hash)).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """MTH of RFC 9162 over leaves already hashed, in one pass (a stack of subtrees)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        stack.append((1, leaf))
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            (size, left), (_, right) = stack[-2], stack[-1]
            stack[-2:] = [(size * 2, hashlib.sha256(b"\x01" + left + right).digest())]
    root = stack[-1][1]
    for _, node in reversed(stack[:-1]):
        root = hashlib.sha256(b"\x01" + node + root).digest()
    return root


def verify(events: list, claims: dict) -> str:
    """A summary when the events hold against the checkpoint's claims; else Refused."""
    if not isinstance(events, list):
        raise Refused("the events file is not a JSON array of events")
    events = sorted(events, key=lambda event: event.get("sequence", 0))
    prev_hash, leaves, redacted = GENESIS_HASH, [], 0
    for position, event in enumerate(events, start=1):
        try:
            if event["sequence"] != position:
                raise Refused(f"event #{position} is missing (the export must start at #1)")
            if event["prev_hash"] != prev_hash:
                raise Refused(f"event #{position}: its previous hash is not the event before it")
            if event_hash(event, prev_hash) != event["hash"]:
                raise Refused(f"event #{position}: its fields do not match its hash")
            if event.get("redacted"):
                redacted += 1
            elif "client_ip" in event:
                digest = hashlib.sha256(
                    _canonical({"data": event["payload"], "client_ip": event["client_ip"]})
                ).hexdigest()
                if digest != event["payload_digest"]:
                    raise Refused(f"event #{position}: its payload does not match its digest")
        except (KeyError, TypeError, ValueError) as exc:
            raise Refused(f"event #{position} is malformed: {exc!r}") from exc
        prev_hash = event["hash"]
        leaves.append(_leaf(event["hash"]))
    size = claims["tree_size"]
    if len(leaves) < size:
        raise Refused(
            f"the export ends at event #{len(leaves)} but the checkpoint covers {size} events: "
            "events were removed"
        )
    if merkle_root(leaves[:size]).hex() != claims["root_hash"]:
        raise Refused(f"the first {size} events do not have the checkpoint's signed root")
    if events[size - 1]["hash"] != claims["head_hash"]:
        raise Refused(f"event #{size} is not the checkpoint's head")
    return (
        f"OK: {len(leaves)} events chained, {redacted} redacted payloads; the first {size} "
        f"match the checkpoint signed by {claims.get('iss', '?')} (root {claims['root_hash']})"
    )


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_holds(leaf: bytes, index: int, tree_size: int, proof: list, root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does `proof` put `leaf` at `index` of the tree with `root`?"""
    if not 0 <= index < tree_size:
        return False
    fn, sn, result = index, tree_size - 1, leaf
    for sibling_hex in proof:
        sibling = bytes.fromhex(sibling_hex)
        if sn == 0 or len(sibling) != 32:
            return False
        if fn & 1 or fn == sn:
            result = _node(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = _node(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and result == root


def verify_proofs(bundle: dict, jwks: dict, checkpoint: dict | None = None) -> str:
    """A summary when every event of a filtered export is proven in the checkpoint's
    tree; else Refused."""
    if not isinstance(bundle, dict) or bundle.get("type") != PROOF_BUNDLE_TYPE:
        raise Refused(f"the proofs file is not an export of type {PROOF_BUNDLE_TYPE!r}")
    claims = checkpoint_claims(bundle.get("checkpoint") or {}, jwks)
    if checkpoint is not None:
        given = checkpoint_claims(checkpoint, jwks)
        if (given["tree_size"], given["root_hash"]) != (claims["tree_size"], claims["root_hash"]):
            raise Refused(
                f"the export is proven against the checkpoint of {claims['tree_size']} events, "
                f"not the one given ({given['tree_size']} events)"
            )
    events = bundle.get("events")
    if not isinstance(events, list):
        raise Refused("the proofs file has no list of events")
    size, root = claims["tree_size"], bytes.fromhex(claims["root_hash"])
    previous: dict | None = None
    redacted = 0
    for event in events:
        try:
            sequence = event["sequence"]
            if previous is not None and sequence <= previous["sequence"]:
                raise Refused(f"event #{sequence} is out of order or repeated")
            if event_hash(event, event["prev_hash"]) != event["hash"]:
                raise Refused(f"event #{sequence}: its fields do not match its hash")
            if (
                previous is not None
                and sequence == previous["sequence"] + 1
                and event["prev_hash"] != previous["hash"]
            ):
                raise Refused(f"event #{sequence}: its previous hash is not event #{sequence - 1}")
            if event.get("redacted"):
                redacted += 1
            elif "client_ip" in event:
                digest = hashlib.sha256(
                    _canonical({"data": event["payload"], "client_ip": event["client_ip"]})
                ).hexdigest()
                if digest != event["payload_digest"]:
                    raise Refused(f"event #{sequence}: its payload does not match its digest")
            inclusion = event["inclusion"]
            if inclusion["leaf_index"] != sequence - 1 or inclusion["tree_size"] != size:
                raise Refused(f"event #{sequence}: its proof is for another place or tree")
            leaf = _leaf(event["hash"])
            if not inclusion_holds(leaf, sequence - 1, size, inclusion["proof"], root):
                raise Refused(
                    f"event #{sequence}: its inclusion proof does not lead to the signed root"
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise Refused(f"event {event.get('sequence', '?')} is malformed: {exc!r}") from exc
        previous = event
    return (
        f"OK: {len(events)} exported events, {redacted} redacted payloads, each proven in the "
        f"checkpoint of {size} events signed by {claims.get('iss', '?')} (root "
        f"{claims['root_hash']}); a filtered export does not prove the filter left nothing out"
    )


def _load(path: str) -> object:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", help="the exported trail from #1 (JSON array)")
    parser.add_argument("--proofs", help="a filtered export with inclusion proofs (JSON)")
    parser.add_argument("--checkpoint", help="the exported checkpoint (JSON)")
    parser.add_argument("--jwks", required=True, help="the portal's JWK set (JSON)")
    args = parser.parse_args(argv)
    if bool(args.events) == bool(args.proofs):
        parser.error("give either --events (with --checkpoint) or --proofs")
    if args.events and not args.checkpoint:
        parser.error("--events needs --checkpoint")
    try:
        jwks = _load(args.jwks)
        document = _load(args.checkpoint) if args.checkpoint else None
        data = _load(args.events or args.proofs)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read the inputs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.proofs:
            print(verify_proofs(data, jwks, document))
        else:
            print(verify(data, checkpoint_claims(document, jwks)))
    except Refused as refused:
        print(f"REFUSED: {refused}", file=sys.stderr)
        return EXIT_INVALID
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
