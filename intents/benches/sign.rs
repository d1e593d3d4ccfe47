//! How long signing one transaction takes: the part of a proxied request that is pure CPU.
//! `cargo bench -p keyward-intents`

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_intents::{Address, Fee, PrivateKey, U256, UnsignedTx};

fn transfer(fee: Fee) -> UnsignedTx {
    UnsignedTx {
        chain_id: 31337,
        nonce: 7,
        to: Address::repeat_byte(0x42),
        value: U256::from(1_000_000_000_000u128),
        data: Default::default(),
        gas_limit: 21_000,
        fee,
    }
}

fn sign(c: &mut Criterion) {
    // The key derives its address on the first signature and keeps it: every later
    // iteration is the signature and the encoding alone, as in a request.
    let key = PrivateKey::parse_hex("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318").unwrap();
    let legacy = transfer(Fee::Legacy {
        gas_price: 5_000_000_000,
    });
    let eip1559 = transfer(Fee::Eip1559 {
        max_fee_per_gas: 5_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
    });
    c.bench_function("sign a legacy transfer", |b| b.iter(|| legacy.sign(&key).unwrap()));
    c.bench_function("sign an EIP-1559 transfer", |b| b.iter(|| eip1559.sign(&key).unwrap()));
}

criterion_group!(benches, sign);
criterion_main!(benches);
