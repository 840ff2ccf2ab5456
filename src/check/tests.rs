//! The checker against histories whose answer is known: generated from a register that takes
//! each operation's effect at a point between its call and return (linearizable by
//! construction), with writes that time out and may or may not apply, and from the same
//! register read through a lagging replica (a stale read presented as linearizable), which the
//! checker must catch.

use super::history::{parse, Call, Operation, Ret};
use super::{check, counts, Verdict, BUDGET_DEFAULT};
use crate::rng::Rng;

/// How reads are served in a generated history.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// At the operation's linearization point.
    Linearizable,
    /// From a replica that lags by up to this many writes.
    Stale(u64),
}

/// A history of `clients` clients doing `per_client` operations each on `keys` keys.
fn generate(seed: u64, clients: u64, per_client: u64, keys: u64, reads: Reads) -> Vec<Operation> {
    let mut rng = Rng::new(seed);
    // (point, client, index): every operation's linearization point, chosen first.
    struct Planned {
        point: u64,
        op: Operation,
        applies: bool,
    }
    let mut planned: Vec<Planned> = Vec::new();
    for client in 0..clients {
        let mut t = rng.below(20);
        for n in 0..per_client {
            let call_ns = t;
            let return_ns = call_ns + 1 + rng.below(40);
            let point = call_ns + rng.below(return_ns - call_ns + 1);
            let key = format!("k{}", rng.below(keys));
            let value = format!("c{client}-{n}");
            let call = match rng.below(10) {
                0..=3 => Call::Get,
                4..=6 => Call::Put { value },
                7 => Call::Delete,
                _ => Call::Cas { expected: None, new: value },
            };
            // A tenth of the writes time out; half of those applied anyway.
            let unknown = !matches!(call, Call::Get) && rng.chance(1, 10);
            let applies = !unknown || rng.chance(1, 2);
            let op = Operation {
                client,
                key,
                call,
                ret: if unknown { Ret::Unknown } else { Ret::Ok },
                call_ns,
                return_ns: (!unknown).then_some(return_ns),
            };
            planned.push(Planned { point, op, applies });
            t = return_ns + 1 + rng.below(10);
        }
    }
    planned.sort_by_key(|p| (p.point, p.op.client));
    // Apply in point order, remembering every key's past values for stale reads.
    let mut past: std::collections::BTreeMap<String, Vec<Option<String>>> = Default::default();
    let mut out = Vec::new();
    for Planned { op, applies, .. } in planned {
        let history = past.entry(op.key.clone()).or_insert_with(|| vec![None]);
        let current = history.last().cloned().unwrap_or(None);
        let mut op = op;
        match &op.call {
            Call::Get => {
                let seen = match reads {
                    Reads::Linearizable => current,
                    Reads::Stale(lag) => {
                        let back = usize::try_from(rng.below(lag + 1)).unwrap_or(0).min(history.len() - 1);
                        history[history.len() - 1 - back].clone()
                    }
                };
                op.ret = Ret::Value(seen);
            }
            Call::Put { value } => {
                if applies {
                    history.push(Some(value.clone()));
                }
            }
            Call::Delete => {
                if op.ret != Ret::Unknown {
                    op.ret = if current.is_some() { Ret::Ok } else { Ret::NotFound };
                }
                if applies {
                    history.push(None);
                }
            }
            Call::Cas { expected, new } => {
                let holds = &current == expected;
                if op.ret != Ret::Unknown {
                    op.ret = if holds { Ret::Ok } else { Ret::Failed(current.clone()) };
                }
                if applies && holds {
                    history.push(Some(new.clone()));
                }
            }
        }
        out.push(op);
    }
    out
}

#[test]
fn histories_of_a_linearizable_register_pass_with_possibly_applied_timeouts() {
    for seed in 0..40 {
        let history = generate(seed, 5, 60, 3, Reads::Linearizable);
        let c = counts(&history);
        assert!(c.indeterminate > 0 && c.completed > 200, "seed {seed}: {c:?}");
        assert_eq!(check(&history, BUDGET_DEFAULT), Verdict::Linearizable, "seed {seed}");
    }
}

#[test]
fn stale_reads_presented_as_linearizable_are_caught() {
    // A replica lagging by up to two writes serves the reads. Every seed is caught within a
    // bounded history (300 operations).
    let mut caught = 0;
    for seed in 0..40 {
        let history = generate(seed, 5, 60, 3, Reads::Stale(2));
        match check(&history, BUDGET_DEFAULT) {
            Verdict::NotLinearizable { prefix, stuck, .. } => {
                caught += 1;
                assert!(stuck.contains(" get ") || prefix.iter().any(|op| op.contains(" get ")), "{stuck}");
            }
            other => panic!("seed {seed}: a stale read path passed as {other:?}"),
        }
    }
    assert_eq!(caught, 40);
}

#[test]
fn the_verdict_names_the_key_and_prints_the_stuck_operation() {
    let history = parse("1 0 10 put a x -> ok\n1 0 10 put b y -> ok\n2 20 30 get b -> nil").unwrap();
    let verdict = check(&history, BUDGET_DEFAULT);
    match &verdict {
        Verdict::NotLinearizable { key, prefix, stuck } => {
            assert_eq!(key, "b");
            assert_eq!(prefix, &vec!["1 0 10 put b y -> ok".to_string()]);
            assert_eq!(stuck, "2 20 30 get b -> nil");
        }
        other => panic!("{other:?}"),
    }
    assert!(verdict.to_string().contains("cannot be followed by"), "{verdict}");
    // Reads without a result are left out; a key with an undecidable search is not a pass.
    let failed_read = parse("1 0 10 put a x -> ok\n2 20 inf get a -> ?").unwrap();
    assert_eq!(check(&failed_read, BUDGET_DEFAULT), Verdict::Linearizable);
    assert_eq!(counts(&failed_read).failed_reads, 1);
    let mut hard: String = (0..14).map(|c| format!("{c} 0 100 put k v{c} -> ok\n")).collect();
    hard.push_str("99 101 110 get k -> none\n");
    assert_eq!(check(&parse(&hard).unwrap(), 500), Verdict::Unknown { key: "k".into() });
}
