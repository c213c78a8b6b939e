"""Write a CSV file as Parquet with PyArrow's standard encryption API, as an owner who
already uses Parquet Modular Encryption does: CryptoFactory with internal key material, no
double wrapping, and parquet-mr's local key wrapping (LKW1) as the KMS client.

    python3 pyarrow_pme.py CSV OUT TYPES MASTER_ID MASTER_HEX ALLOWED OTHER_ID OTHER_HEX

TYPES: `name=type,...` (string, int64, float64). The footer and the ALLOWED columns
(comma-separated) are under master key MASTER_ID; the other columns under OTHER_ID.
`LocalWrapKmsClient` is the class docs/guide.md gives PyArrow users.
"""

import base64
import json
import os
import sys

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class LocalWrapKmsClient(pe.KmsClient):
    """parquet-mr's local key wrapping: a data key is AES-GCM encrypted under the master key
    (12-byte nonce, AAD = the master key id) and stored as
    {"localWrappingType": "LKW1", "masterKeyVersion": "NO_VERSION",
     "encryptedKey": base64(nonce || ciphertext || tag)}."""

    def __init__(self, master_keys):
        pe.KmsClient.__init__(self)
        self.master_keys = master_keys  # id -> 32 bytes

    def wrap_key(self, key_bytes, master_key_identifier):
        nonce = os.urandom(12)
        aead = AESGCM(self.master_keys[master_key_identifier])
        sealed = aead.encrypt(nonce, key_bytes, master_key_identifier.encode())
        return json.dumps(
            {
                "localWrappingType": "LKW1",
                "masterKeyVersion": "NO_VERSION",
                "encryptedKey": base64.b64encode(nonce + sealed).decode(),
            }
        )

    def unwrap_key(self, wrapped_key, master_key_identifier):
        w = json.loads(wrapped_key)
        raw = base64.b64decode(w["encryptedKey"])
        aead = AESGCM(self.master_keys[master_key_identifier])
        return aead.decrypt(raw[:12], raw[12:], master_key_identifier.encode())


def main():
    csv, out, types, master_id, master_hex, allowed, other_id, other_hex = sys.argv[1:9]
    kinds = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    column_types = {
        name: kinds[kind] for name, kind in (t.split("=") for t in types.split(","))
    }
    table = pcsv.read_csv(csv, convert_options=pcsv.ConvertOptions(column_types=column_types))
    allowed = allowed.split(",")
    others = [c for c in table.column_names if c not in allowed]
    keys = {master_id: bytes.fromhex(master_hex), other_id: bytes.fromhex(other_hex)}
    factory = pe.CryptoFactory(lambda _config: LocalWrapKmsClient(keys))
    column_keys = {master_id: allowed}
    if others:
        column_keys[other_id] = others
    config = pe.EncryptionConfiguration(
        footer_key=master_id,
        column_keys=column_keys,
        double_wrapping=False,
        internal_key_material=True,
        plaintext_footer=False,
    )
    props = factory.file_encryption_properties(pe.KmsConnectionConfig(), config)
    with pq.ParquetWriter(out, table.schema, encryption_properties=props) as w:
        w.write_table(table, row_group_size=1000)
    # Read back with the same client: the file is standard.
    dec = factory.file_decryption_properties(pe.KmsConnectionConfig())
    assert pq.read_table(out, decryption_properties=dec).num_rows == table.num_rows


if __name__ == "__main__":
    main()
