"""Mints access tokens and a DPoP proof with an independent JOSE stack
(PyJWT + cryptography), for Loci's interoperability test.

Usage: pyjwt_tokens.py ISSUER AUDIENCE HTU
Prints JSON: {"jwks": {...}, "tokens": {"ES256": ..., "EdDSA": ..., "RS256": ...},
              "bound_token": ..., "proof": ..., "jkt": ...}
"""

import base64
import hashlib
import json
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives import serialization


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64u(n: int, length: int | None = None) -> str:
    length = length or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(length, "big"))


def ec_jwk(public_key) -> dict:
    numbers = public_key.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": int_b64u(numbers.x, 32), "y": int_b64u(numbers.y, 32)}


def ed_jwk(public_key) -> dict:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}


def rsa_jwk(public_key) -> dict:
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": int_b64u(numbers.n), "e": int_b64u(numbers.e)}


def thumbprint(jwk: dict) -> str:
    """RFC 7638, written independently of Loci."""
    required = {"EC": ["crv", "kty", "x", "y"], "OKP": ["crv", "kty", "x"], "RSA": ["e", "kty", "n"]}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canonical.encode()).digest())


def main() -> None:
    issuer, audience, htu = sys.argv[1:4]
    now = int(time.time())
    es_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rs_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = {
        "ES256": (es_key, dict(ec_jwk(es_key.public_key()), kid="py-es", alg="ES256", use="sig")),
        "EdDSA": (ed_key, dict(ed_jwk(ed_key.public_key()), kid="py-ed", alg="EdDSA", use="sig")),
        "RS256": (rs_key, dict(rsa_jwk(rs_key.public_key()), kid="py-rs", alg="RS256", use="sig")),
    }

    def claims(**extra) -> dict:
        base = {
            "iss": issuer, "aud": audience, "sub": "py-user", "org_id": "py-org", "jti": str(uuid.uuid4()),
            "iat": now, "nbf": now, "exp": now + 300, "scope": "memories:read",
        }
        base.update(extra)
        return base

    tokens = {
        alg: jwt.encode(claims(), key, algorithm=alg, headers={"kid": jwk["kid"], "typ": "JWT"})
        for alg, (key, jwk) in keys.items()
    }

    dpop_key = ec.generate_private_key(ec.SECP256R1())
    dpop_jwk = ec_jwk(dpop_key.public_key())
    jkt = thumbprint(dpop_jwk)
    bound = jwt.encode(claims(cnf={"jkt": jkt}), es_key, algorithm="ES256", headers={"kid": "py-es"})
    ath = b64u(hashlib.sha256(bound.encode()).digest())
    proof = jwt.encode(
        {"jti": str(uuid.uuid4()), "htm": "GET", "htu": htu, "iat": now, "ath": ath},
        dpop_key,
        algorithm="ES256",
        headers={"typ": "dpop+jwt", "jwk": dpop_jwk},
    )
    print(json.dumps({
        "jwks": {"keys": [jwk for _, jwk in keys.values()]},
        "tokens": tokens,
        "bound_token": bound,
        "proof": proof,
        "jkt": jkt,
        "rfc7638_example": thumbprint({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
        }),
    }))


if __name__ == "__main__":
    main()
