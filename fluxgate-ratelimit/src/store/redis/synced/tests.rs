//! Synced mode's local decisions.

use super::*;

fn admitted(local: &Local) -> bool {
    matches!(local, Local::Decided(Outcome::Admitted { .. }))
}

#[test]
fn a_replica_admits_its_share_of_what_is_left_then_asks_redis() {
    let params = Params::Window {
        w: 1_000_000,
        limit: 5,
    };
    let table = Table::new(64);
    let name = || "k".to_owned();
    // Two replicas, 5 left: this one admits 2 locally (2 × 3 > 5), then asks Redis.
    assert!(admitted(&table.decide(1, params, 10, 2, name)));
    assert!(admitted(&table.decide(1, params, 20, 2, name)));
    assert!(matches!(
        table.decide(1, params, 30, 2, name),
        Local::Strict
    ));
    // Alone, it admits the whole quota locally.
    for now in 0..5 {
        assert!(admitted(&table.decide(2, params, now, 1, name)));
    }
    // Redis' answer (this replica's 2 carried, counted) leaves 3: one more is its share.
    let _ = table.take(1);
    table.absorb(1, params, [0, 0, 2], true);
    assert!(admitted(&table.decide(1, params, 40, 2, name)));
    assert!(matches!(
        table.decide(1, params, 50, 2, name),
        Local::Strict
    ));
}
