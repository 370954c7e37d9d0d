//! Property tests: any value and any buffer survive the trip between ranks unchanged, and
//! every reduction equals the sequential fold in rank order.

use braid_mpi::{Comm, Loc, Op, run_threads};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Point,
    Circle { r: f64 },
    Poly(Vec<(i32, i32)>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Thing {
    name: String,
    id: u64,
    weights: Vec<f32>,
    shape: Option<Shape>,
}

fn thing() -> impl Strategy<Value = Thing> {
    let shape = prop_oneof![
        Just(Shape::Point),
        any::<f64>()
            .prop_filter("comparable", |r| !r.is_nan())
            .prop_map(|r| Shape::Circle { r }),
        prop::collection::vec(any::<(i32, i32)>(), 0..20).prop_map(Shape::Poly),
    ];
    (
        ".{0,40}",
        any::<u64>(),
        prop::collection::vec(-1e6f32..1e6, 0..100),
        prop::option::of(shape),
    )
        .prop_map(|(name, id, weights, shape)| Thing {
            name,
            id,
            weights,
            shape,
        })
}

/// Sends `value` from rank 0 to rank 1 on a fresh two-rank job and returns what arrived.
fn round_trip<T>(f: impl Fn(&Comm) -> Option<T> + Sync) -> T
where
    T: Send,
{
    let mut results = run_threads(2, |comm| f(&comm)).expect("the job ran");
    results.pop().flatten().expect("rank 1 received")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn objects_arrive_unchanged(value in thing()) {
        let got = round_trip(|comm| {
            if comm.rank() == 0 {
                comm.send(&value, 1, 0).unwrap();
                None
            } else {
                Some(comm.recv::<Thing>(0, 0).unwrap())
            }
        });
        prop_assert_eq!(got, value);
    }

    #[test]
    fn buffers_arrive_unchanged(
        data in prop::collection::vec(any::<i64>(), 0..5000),
        extra in 0usize..10,
    ) {
        let got = round_trip(|comm| {
            if comm.rank() == 0 {
                comm.send_buf(&data, 1, 0).unwrap();
                None
            } else {
                let mut buf = vec![0i64; data.len() + extra];
                let status = comm.recv_buf(&mut buf, 0, 0).unwrap();
                buf.truncate(status.count());
                Some(buf)
            }
        });
        prop_assert_eq!(got, data);
    }

    #[test]
    fn float_buffers_keep_their_bits(data in prop::collection::vec(any::<f64>(), 0..2000)) {
        let got = round_trip(|comm| {
            if comm.rank() == 0 {
                comm.isend_buf(&data, 1, 3).unwrap().wait().unwrap();
                None
            } else {
                Some(comm.irecv_buf::<f64>(data.len(), 0, 3).unwrap().wait().unwrap())
            }
        });
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&got), bits(&data));
    }

    #[test]
    fn reductions_equal_the_sequential_fold(
        per_rank in prop::collection::vec(prop::collection::vec(-1000i64..1000, 8), 2..=4),
    ) {
        let n = per_rank.len();
        let fold = |f: &dyn Fn(i64, i64) -> i64| -> Vec<i64> {
            (0..8).map(|i| per_rank.iter().map(|v| v[i]).reduce(f).unwrap()).collect()
        };
        let sum = fold(&|a, b| a + b);
        let prod = fold(&|a, b| a.wrapping_mul(b));
        let min = fold(&|a, b| a.min(b));
        let max = fold(&|a, b| a.max(b));
        let band = fold(&|a, b| a & b);
        let bor = fold(&|a, b| a | b);
        // Non-commutative: a 2x2 integer matrix product of all ranks' matrices, in order.
        let mats: Vec<[i64; 4]> = per_rank.iter().map(|v| [v[0] % 7, v[1] % 7, v[2] % 7, v[3] % 7]).collect();
        let matmul = |a: &[i64; 4], b: &[i64; 4]| [
            a[0].wrapping_mul(b[0]).wrapping_add(a[1].wrapping_mul(b[2])),
            a[0].wrapping_mul(b[1]).wrapping_add(a[1].wrapping_mul(b[3])),
            a[2].wrapping_mul(b[0]).wrapping_add(a[3].wrapping_mul(b[2])),
            a[2].wrapping_mul(b[1]).wrapping_add(a[3].wrapping_mul(b[3])),
        ];
        let prefixes: Vec<[i64; 4]> = mats.iter().scan(None, |acc: &mut Option<[i64; 4]>, m| {
            let next = match acc { None => *m, Some(a) => matmul(a, m) };
            *acc = Some(next);
            Some(next)
        }).collect();
        let maxloc = per_rank.iter().enumerate().map(|(r, v)| Loc::new(v[0] as f64, r as i64))
            .reduce(|a, b| if b.value > a.value { b } else { a }).unwrap();
        let results = run_threads(n, |comm| {
            let r = comm.rank();
            let mine = &per_rank[r];
            let all = |op: Op<i64>| {
                let mut out = vec![0i64; 8];
                comm.allreduce_buf(mine, &mut out, op).unwrap();
                out
            };
            let objects: Vec<i64> = comm.allreduce(mine, Op::sum()).unwrap();
            let mut reduced = vec![0i64; 8];
            comm.reduce_buf(mine, (r == n - 1).then_some(&mut reduced[..]), Op::min(), n - 1).unwrap();
            let matop = Op::user(matmul, false);
            let product = comm.allreduce(&mats[r], matop.clone()).unwrap();
            let scanned = comm.scan(&mats[r], matop.clone()).unwrap();
            let exscanned = comm.exscan(&mats[r], matop).unwrap();
            let best = comm.allreduce(&Loc::new(mine[0] as f64, r as i64), Op::maxloc()).unwrap();
            (all(Op::sum()), all(Op::prod()), all(Op::min()), all(Op::max()), all(Op::band()),
             all(Op::bor()), objects, reduced, product, scanned, exscanned, best)
        }).unwrap();
        for (r, got) in results.into_iter().enumerate() {
            prop_assert_eq!(&got.0, &sum);
            prop_assert_eq!(&got.1, &prod);
            prop_assert_eq!(&got.2, &min);
            prop_assert_eq!(&got.3, &max);
            prop_assert_eq!(&got.4, &band);
            prop_assert_eq!(&got.5, &bor);
            prop_assert_eq!(&got.6, &sum);
            if r == n - 1 {
                prop_assert_eq!(&got.7, &min);
            }
            prop_assert_eq!(got.8, prefixes[n - 1]);
            prop_assert_eq!(got.9, prefixes[r]);
            prop_assert_eq!(got.10, (r > 0).then(|| prefixes[r - 1]));
            prop_assert_eq!(got.11.index, maxloc.index);
        }
    }
}
