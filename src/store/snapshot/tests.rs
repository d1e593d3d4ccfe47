use domain::ChainHash;
use projections::ReadModels;

use super::*;

fn snapshot_bytes() -> Vec<u8> {
    encode(&ReadModels::default(), ChainHash([7; 32]))
}

#[test]
fn a_snapshot_decodes_to_what_it_encoded() {
    let decoded = decode(&snapshot_bytes()).unwrap();
    assert_eq!(decoded.models, ReadModels::default());
    assert_eq!(decoded.chain_hash, ChainHash([7; 32]));
    assert_eq!(decoded.position, 0);
}

#[test]
fn every_cut_short_snapshot_is_refused_as_truncated_or_not_a_snapshot() {
    let bytes = snapshot_bytes();
    for len in 0..bytes.len() {
        let refused = decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(refused, Unusable::Truncated { .. } | Unusable::NotASnapshot),
            "{len}: {refused}"
        );
    }
}

#[test]
fn every_flipped_bit_of_the_body_is_caught_by_the_checksum() {
    let bytes = snapshot_bytes();
    for at in HEADER_LEN..bytes.len() {
        let mut spoiled = bytes.clone();
        spoiled[at] ^= 0x10;
        assert_eq!(decode(&spoiled).unwrap_err(), Unusable::Corrupted, "byte {at}");
    }
}

#[test]
fn a_snapshot_of_another_build_is_refused_by_its_fingerprint() {
    let mut bytes = snapshot_bytes();
    bytes[MAGIC.len() + 3] ^= 1;
    assert!(matches!(decode(&bytes).unwrap_err(), Unusable::OtherSchema { .. }));
}

#[test]
fn a_header_naming_another_position_than_its_models_is_refused() {
    let mut bytes = snapshot_bytes();
    bytes[MAGIC.len() + 32 + 7] = 5;
    assert_eq!(
        decode(&bytes).unwrap_err(),
        Unusable::PositionMismatch { header: 5, models: 0 }
    );
}
