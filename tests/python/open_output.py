#!/usr/bin/env python3
"""Open a Cleanroom output (.cro) following docs/formats.md only ("Sealed stream" and
"Output envelope"), with standard libraries: pyhpke (RFC 9180) and cryptography.

    python3 tests/python/open_output.py VECTOR_DIR

VECTOR_DIR holds `vector.json` (the recipient's name and X25519 private key, the expected
inner header and data) and `output.cro`. The script checks the envelope's signature with
the key its header names, unwraps the content key with HPKE, opens the sealed stream,
reads the inner header, and compares everything with the vector. It prints `OK` and exits
0, or names the first mismatch and exits 1.

Run by tests/tests/provenance.rs (`output_opens_with_python_following_the_format_doc`);
CI installs the packages (`python3 -m pip install pyhpke cryptography`).
"""

import base64
import hashlib
import json
import pathlib
import struct
import sys

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

ENVELOPE_MAGIC = b"CLRMOUT2"
STREAM_MAGIC = b"CLRMSEAL"
SIGNATURE_DOMAIN = b"cleanroom-output-signature\0"
HPKE_INFO = b"cleanroom-output-v2"
SIGNATURE_LEN = 96
TAG_LEN = 16


class Refused(Exception):
    pass


def canonical_json(value) -> bytes:
    """RFC 8785 for the values a header holds (strings, integers, booleans): keys sorted,
    no whitespace, UTF-8, the shortest escapes (json.dumps uses the same ones)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def open_stream(stream: bytes, key_id: bytes, key: bytes, expected_name: str) -> bytes:
    """The sealed-stream format: header, then AES-256-GCM segments."""
    if stream[:8] != STREAM_MAGIC:
        raise Refused("content is not a sealed stream")
    if stream[8] != 1:
        raise Refused(f"sealed-stream version {stream[8]}")
    if stream[9:25] != key_id:
        raise Refused("stream key id is not the wrapped key's id")
    (name_len,) = struct.unpack(">H", stream[25:27])
    name = stream[27 : 27 + name_len].decode("utf-8")
    if name != expected_name:
        raise Refused(f"stream name {name!r}, expected {expected_name!r}")
    pos = 27 + name_len
    (segment_size,) = struct.unpack(">I", stream[pos : pos + 4])
    nonce_prefix = stream[pos + 4 : pos + 11]
    header_end = pos + 11
    aad = hashlib.sha256(stream[:header_end]).digest()
    body = stream[header_end:]
    chunk = segment_size + TAG_LEN
    segments = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    if not segments or len(segments[-1]) < TAG_LEN:
        raise Refused("stream is truncated")
    aead = AESGCM(key)
    out = bytearray()
    for counter, segment in enumerate(segments):
        last = counter == len(segments) - 1
        nonce = nonce_prefix + struct.pack(">I", counter) + bytes([1 if last else 0])
        try:
            out += aead.decrypt(nonce, segment, aad)
        except InvalidTag:
            raise Refused(f"segment {counter} does not authenticate")
    return bytes(out)


def open_output(file: bytes, name: str, private_key: bytes):
    """Returns (header, inner header, data)."""
    if file[:8] != ENVELOPE_MAGIC:
        raise Refused("not a Cleanroom output")
    (meta_len,) = struct.unpack(">I", file[8:12])
    meta = json.loads(file[12 : 12 + meta_len])
    header = meta["header"]
    body, signature = file[:-SIGNATURE_LEN], file[-SIGNATURE_LEN:]
    stream = body[12 + meta_len :]

    # 1. The signature: ECDSA P-384, SHA-384, over the domain and the body; r | s.
    host_key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP384R1(), bytes.fromhex(header["host_key"])
    )
    r = int.from_bytes(signature[:48], "big")
    s = int.from_bytes(signature[48:], "big")
    try:
        host_key.verify(
            encode_dss_signature(r, s),
            SIGNATURE_DOMAIN + body,
            ec.ECDSA(hashes.SHA384()),
        )
    except InvalidSignature:
        raise Refused("signature does not verify with the header's host key")

    # 2. The content key: HPKE base mode, aad = H.
    h = hashlib.sha256(canonical_json(header)).digest()
    entry = next((e for e in meta["recipients"] if e["name"] == name), None)
    if entry is None:
        raise Refused(f"{name} is not a recipient")
    suite = CipherSuite.new(
        KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM
    )
    skr = KEMKey.from_pyca_cryptography_key(
        x25519.X25519PrivateKey.from_private_bytes(private_key)
    )
    ctx = suite.create_recipient_context(
        base64.b64decode(entry["enc"]), skr, info=HPKE_INFO
    )
    wrapped = ctx.open(base64.b64decode(entry["wrapped_key"]), aad=h)
    if len(wrapped) != 48:
        raise Refused("the wrapped value is not key id | key")
    key_id, key = wrapped[:16], wrapped[16:]

    # 3. The content: a sealed stream named output:<hex H>; inner header, then data.
    content = open_stream(stream, key_id, key, "output:" + h.hex())
    (inner_len,) = struct.unpack(">I", content[:4])
    inner = json.loads(content[4 : 4 + inner_len])
    return header, inner, content[4 + inner_len :]


def main() -> int:
    vector_dir = pathlib.Path(sys.argv[1])
    vector = json.loads((vector_dir / "vector.json").read_text())
    file = (vector_dir / "output.cro").read_bytes()
    try:
        header, inner, data = open_output(
            file, vector["recipient"], bytes.fromhex(vector["recipient_private_key"])
        )
    except Refused as e:
        print(f"REFUSED: {e}")
        return 1
    checks = [
        ("header", header, vector["header"]),
        ("host key", header["host_key"], vector["host_key"]),
        ("header hash", hashlib.sha256(canonical_json(header)).hexdigest(), vector["header_hash"]),
        ("inner header", inner, vector["content_header"]),
        ("data", data.decode("utf-8"), vector["data"]),
    ]
    for what, got, want in checks:
        if got != want:
            print(f"MISMATCH {what}: got {got!r}, want {want!r}")
            return 1
    # A flipped byte in the sealed content is refused (the signature covers the whole body).
    tampered = bytearray(file)
    tampered[len(file) - SIGNATURE_LEN - 5] ^= 1
    try:
        open_output(bytes(tampered), vector["recipient"], bytes.fromhex(vector["recipient_private_key"]))
        print("MISMATCH: a tampered output opened")
        return 1
    except Refused:
        pass
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
