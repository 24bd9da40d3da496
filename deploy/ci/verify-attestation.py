#!/usr/bin/env python3
"""Verify a deployment gate attestation offline, before deploying.

Needs only PyJWT and cryptography (`pip install "PyJWT[crypto]"`). The JWK set is the
portal's `/.well-known/jwks.json`, saved beforehand (or fetched by gate-check.sh):

    verify-attestation.py --jwks jwks.json --attestation attestation.jwt \\
        --model demand-forecasting --version 1.4.0 --target production \\
        --image-digest sha256:... [--issuer https://governance.example.com]

Exit status: 0 when the attestation is signed by a published key, unexpired, issued by
the portal (when --issuer is given) and names exactly this model, version, target and
image digest; 1 when it is not; 2 on a usage error or an unreadable file.
"""

import argparse
import json
import sys
from datetime import UTC, datetime

import jwt

ATTESTATION_TYPE = "attestation+jwt"
ALGORITHMS = ("EdDSA", "ES256", "RS256")
EXIT_INVALID = 1
EXIT_USAGE = 2


class Refused(Exception):
    pass


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def verify(token: str, jwks: dict, *, issuer: str | None, leeway: int) -> dict:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Refused(f"not a compact JWS: {exc}") from exc
    if header.get("typ") != ATTESTATION_TYPE:
        raise Refused(f"typ header is {header.get('typ')!r}, not {ATTESTATION_TYPE!r}")
    kid = header.get("kid")
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except jwt.PyJWTError as exc:
        raise Refused(f"unusable JWK set: {exc}") from exc
    matching = [key for key in keys if kid and key.key_id == kid]
    if not matching:
        raise Refused(f"no published key has kid {kid!r}")
    key = matching[0]
    # The algorithm is the published key's, never the one the token claims.
    if key.algorithm_name not in ALGORITHMS or header.get("alg") != key.algorithm_name:
        raise Refused(f"algorithm {header.get('alg')!r} does not match key {kid!r}")
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            issuer=issuer,
            leeway=leeway,
            options={"require": ["iss", "iat", "exp"], "verify_iss": issuer is not None},
        )
    except jwt.PyJWTError as exc:
        raise Refused(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jwks", required=True, help="saved /.well-known/jwks.json")
    parser.add_argument("--attestation", required=True, help="file holding the JWS, or -")
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--image-digest", required=True, help="sha256:...")
    parser.add_argument("--issuer", help="the portal's base URL, checked against iss")
    parser.add_argument("--leeway", type=int, default=30, help="clock skew allowed, seconds")
    args = parser.parse_args(argv)

    try:
        jwks = json.loads(_read(args.jwks))
        token = _read(args.attestation).strip()
    except (OSError, ValueError) as exc:
        print(f"verify-attestation: cannot read input: {exc}", file=sys.stderr)
        return EXIT_USAGE

    try:
        claims = verify(token, jwks, issuer=args.issuer, leeway=args.leeway)
        expected = {
            "model": args.model,
            "version": args.version,
            "target": args.target,
            "image_digest": args.image_digest,
        }
        for name, value in expected.items():
            if claims.get(name) != value:
                raise Refused(f"attestation is for {name} {claims.get(name)!r}, not {value!r}")
    except Refused as exc:
        print(f"verify-attestation: REFUSED: {exc}", file=sys.stderr)
        return EXIT_INVALID

    approvers = claims.get("approvers") or []
    names = ", ".join(
        f"{a.get('role', '?')}:{a.get('reviewer', a.get('user', '?'))}"
        if isinstance(a, dict)
        else str(a)
        for a in approvers
    )
    print(
        f"verify-attestation: OK {claims['model']} {claims['version']} -> {claims['target']} "
        f"({claims['image_digest']}), review {claims.get('review')}, approvers [{names}], "
        f"expires {datetime.fromtimestamp(claims['exp'], UTC).isoformat()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
