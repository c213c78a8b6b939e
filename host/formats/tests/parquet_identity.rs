//! A PME Parquet file's identity is the `aad_file_unique` the Parquet reader authenticates
//! it with: the room pins a file's version by comparing it with what the owner registered
//! (I2), so [`FileIdentity::of_encrypted_parquet`] must never read another value than
//! parquet-rs does from the same FileCryptoMetaData. Found by the `parquet_encrypted` fuzz
//! target (docs/reliability.md, campaign 4).

#![cfg(feature = "tabular")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use cleanroom_formats::identity::{FileIdentity, IdentityError};
use cleanroom_formats::keyfile::DatasetKeys;
use cleanroom_formats::parquet::{read_encrypted, write_encrypted};
use cleanroom_formats::stream::DataKey;

fn sealed(keys: &DatasetKeys, values: Vec<i64>) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))]).unwrap();
    write_encrypted(keys, &["v".to_string()], "ds", schema, [batch]).unwrap()
}

/// `file` with `insert` put into its FileCryptoMetaData at `at` bytes from its start (the
/// footer length adjusted).
fn splice(file: &[u8], at: usize, insert: &[u8], drop: usize) -> Vec<u8> {
    let n = file.len();
    let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
    let start = n - 8 - len;
    let mut out = file[..start + at].to_vec();
    out.extend_from_slice(insert);
    out.extend_from_slice(&file[start + at + drop..n - 8]);
    out.extend_from_slice(&((len + insert.len() - drop) as u32).to_le_bytes());
    out.extend_from_slice(b"PARE");
    out
}

/// The attack: the owner sealed two versions of a dataset under the same key and registered
/// the first at its broker. The operator takes the second and puts in front of its
/// encryption algorithm a first one carrying the registered version's `aad_file_unique`.
/// parquet-rs keeps the last of a repeated field and decrypts the second version; a reader
/// keeping the first reports the registered identity, and the room would read a version the
/// owner never registered. The identity reader refuses a repeated field.
#[test]
fn a_second_encryption_algorithm_cannot_pass_one_version_for_another() {
    let keys = DatasetKeys {
        key: DataKey::generate(),
        withheld: None,
    };
    let registered = sealed(&keys, vec![1, 2, 3]);
    let other = sealed(&keys, vec![666]);
    let FileIdentity::Parquet(unique) = FileIdentity::of_encrypted_parquet(&registered).unwrap()
    else {
        panic!("a Parquet identity");
    };
    assert_eq!(unique.len(), 8);
    // FileCryptoMetaData starts with field 1 (delta 1, struct: 0x1c). Before it: field 1,
    // struct, holding AES_GCM_V1 { 2: aad_file_unique }; the original field 1 follows in
    // long form (0x0c, zigzag id 2) so that it is field 1 again.
    let mut first = vec![0x1c, 0x1c, 0x28, 0x08];
    first.extend_from_slice(&unique);
    first.extend_from_slice(&[0x00, 0x00, 0x0c, 0x02]);
    let forged = splice(&other, 0, &first, 1);
    // parquet-rs reads the other version, every page authenticated.
    let (_, batches) = read_encrypted(
        &keys,
        &["v".to_string()],
        &["v".to_string()],
        "ds",
        forged.clone(),
    )
    .unwrap();
    let values = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    assert_eq!(values, vec![666]);
    // Its identity is not the registered one: it has none.
    assert_eq!(
        FileIdentity::of_encrypted_parquet(&forged),
        Err(IdentityError::NotEncryptedParquet(
            "FileCryptoMetaData has a field twice"
        ))
    );
}

/// The same through a field whose wire type is not its type: parquet-rs reads field 1 as
/// the encryption algorithm whatever type its header says, so a first field 1 typed as a
/// binary (which a lenient reader skips) hides nothing from parquet-rs but would hide the
/// algorithm from the identity reader.
#[test]
fn a_field_of_another_wire_type_is_refused() {
    let keys = DatasetKeys {
        key: DataKey::generate(),
        withheld: None,
    };
    let file = sealed(&keys, vec![1]);
    // The first byte of FileCryptoMetaData, 0x1c (field 1, struct), as 0x13 (field 1, byte).
    let retyped = splice(&file, 0, &[0x13], 1);
    assert!(
        read_encrypted(&keys, &["v".into()], &["v".into()], "ds", retyped.clone()).is_ok(),
        "parquet-rs reads it"
    );
    assert_eq!(
        FileIdentity::of_encrypted_parquet(&retyped),
        Err(IdentityError::NotEncryptedParquet(
            "FileCryptoMetaData has a field of another type"
        ))
    );
}
