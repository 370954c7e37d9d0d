//! The test suite's cases, each run on 2, 3 and 4 ranks both as threads (`tests/threads.rs`)
//! and as processes under the launcher (`tests/process.rs`).

#![allow(dead_code)]

use braid_mpi::{
    ANY_SOURCE, ANY_TAG, BackendKind, Comm, Error, Loc, Op, Request, Source, dims_create,
    processor_name, wait_all, wait_any, wtime,
};
use serde::{Deserialize, Serialize};

/// The body of a test case, run by every rank.
pub type Body = fn(&Comm) -> Result<(), Error>;

/// A test case: its name and its body.
pub type Case = (&'static str, Body);

/// Every case of the suite.
pub fn cases() -> Vec<Case> {
    vec![
        ("p2p_objects", p2p_objects),
        ("any_source_any_tag", any_source_any_tag),
        ("buffers", buffers),
        ("large_buffers", large_buffers),
        ("wrong_type_is_an_error", wrong_type_is_an_error),
        ("nonblocking", nonblocking),
        ("sendrecv", sendrecv),
        ("probe", probe),
        ("object_collectives", object_collectives),
        ("buffer_collectives", buffer_collectives),
        ("v_collectives", v_collectives),
        ("reductions", reductions),
        ("buffer_reductions", buffer_reductions),
        ("large_ordered_reductions", large_ordered_reductions),
        ("large_point_to_point", large_point_to_point),
        ("large_bcast", large_bcast),
        ("communicators", communicators),
        ("cartesian", cartesian),
        ("environment", environment),
    ]
}

/// A case by name.
pub fn case(name: &str) -> Option<Body> {
    cases()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    rank: usize,
    values: Vec<f64>,
    tags: std::collections::BTreeMap<String, i32>,
}

fn record(rank: usize) -> Record {
    Record {
        name: format!("rank-{rank}"),
        rank,
        values: vec![rank as f64 * 1.5; rank + 1],
        tags: [("a".to_string(), rank as i32)].into_iter().collect(),
    }
}

fn p2p_objects(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let right = (r + 1) % n;
    let left = (r + n - 1) % n;
    if r == 0 {
        comm.send(&record(r), right, 11)?;
        let (got, status) = comm.recv_with_status::<Record>(left, 11)?;
        assert_eq!(got, record(left));
        assert_eq!((status.source(), status.tag()), (left, 11));
        assert!(status.is_object());
    } else {
        let got: Record = comm.recv(left, 11)?;
        assert_eq!(got, record(left));
        comm.send(&record(r), right, 11)?;
    }
    // Tags are matched, not arrival order.
    if r == 0 {
        comm.send(&"first", 1, 1)?;
        comm.send(&"second", 1, 2)?;
    } else if r == 1 {
        let second: String = comm.recv(0, 2)?;
        let first: String = comm.recv(0, 1)?;
        assert_eq!((first.as_str(), second.as_str()), ("first", "second"));
    }
    // Messages to self.
    comm.send(&vec![r; 3], r, 5)?;
    assert_eq!(comm.recv::<Vec<usize>>(r, 5)?, vec![r; 3]);
    assert!(matches!(
        comm.send(&1, n, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        comm.send(&1, 0, -1),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

fn any_source_any_tag(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    if r == 0 {
        let mut seen = vec![false; n];
        for _ in 1..n {
            let (value, status) = comm.recv_with_status::<usize>(ANY_SOURCE, ANY_TAG)?;
            assert_eq!(value, status.source());
            assert_eq!(status.tag(), 100 + status.source() as i32);
            seen[value] = true;
        }
        assert!(seen[1..].iter().all(|s| *s));
    } else {
        comm.send(&r, 0, 100 + r as i32)?;
    }
    comm.barrier()
}

fn buffers(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    if r == 0 {
        for dest in 1..n {
            let data: Vec<f64> = (0..100).map(|i| (i * dest) as f64).collect();
            comm.send_buf(&data, dest, 3)?;
            comm.send_buf(&[dest as i32; 4], dest, 4)?;
        }
    } else {
        let mut buf = vec![0.0f64; 100];
        let status = comm.recv_buf(&mut buf, 0, 3)?;
        assert_eq!(status.count(), 100);
        assert_eq!(status.bytes(), 800);
        assert_eq!(buf[99], (99 * r) as f64);
        // A shorter message into a larger buffer is fine; the status says how long.
        let mut ints = [0i32; 10];
        let status = comm.recv_buf(&mut ints, Source::Rank(0), ANY_TAG)?;
        assert_eq!(status.count(), 4);
        assert_eq!(&ints[..4], &[r as i32; 4]);
    }
    comm.barrier()
}

fn large_buffers(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    // Larger than any ring: streamed while the receiver copies out.
    let len = 3 << 20;
    if r == 0 {
        let data: Vec<u64> = (0..len as u64).collect();
        comm.send_buf(&data, n - 1, 9)?;
        comm.send(&data[..1000].to_vec(), n - 1, 10)?;
    } else if r == n - 1 {
        let mut buf = vec![0u64; len];
        comm.recv_buf(&mut buf, 0, 9)?;
        assert!(buf.iter().enumerate().all(|(i, v)| *v == i as u64));
        let small: Vec<u64> = comm.recv(0, 10)?;
        assert_eq!(small.len(), 1000);
    }
    comm.barrier()
}

fn wrong_type_is_an_error(comm: &Comm) -> Result<(), Error> {
    let r = comm.rank();
    let native = comm.backend() == BackendKind::Native;
    if r == 0 {
        comm.send_buf(&[1.5f64, 2.5], 1, 1)?;
        comm.send(&(1u8, 2u8, 3u8), 1, 2)?;
        comm.send_buf(&[1u8, 2, 3], 1, 3)?;
    } else if r == 1 {
        let mut ints = [0i32; 2];
        let wrong_type = comm.recv_buf(&mut ints, 0, 1);
        if native {
            assert!(matches!(
                wrong_type,
                Err(Error::TypeMismatch {
                    source_rank: 0,
                    tag: 1,
                    ..
                })
            ));
        } else {
            // MPI messages carry no element type: only their size shows (16 bytes are
            // four i32s), and a size that is no whole number of elements.
            assert!(matches!(
                wrong_type,
                Err(Error::Truncated {
                    found: 4,
                    capacity: 2,
                    ..
                })
            ));
            let mut shorts = [0u16; 4];
            assert!(matches!(
                comm.recv_buf(&mut shorts, 0, 3),
                Err(Error::NotWholeElements { bytes: 3, .. })
            ));
        }
        let mut three = [0u8; 3];
        comm.recv_buf(&mut three, 0, 3)?;
        assert_eq!(three, [1, 2, 3]);
        let mut short = [0f64; 1];
        assert!(matches!(
            comm.recv_buf(&mut short, 0, 1),
            Err(Error::Truncated {
                found: 2,
                capacity: 1,
                ..
            })
        ));
        assert!(matches!(
            comm.recv::<Vec<f64>>(0, 1),
            Err(Error::KindMismatch {
                expected: "object",
                found: "buffer",
                ..
            })
        ));
        assert!(matches!(comm.recv::<u8>(0, 2), Err(Error::Decode { .. })));
        let mut bytes = [0u8; 3];
        assert!(matches!(
            comm.recv_buf(&mut bytes, 0, 2),
            Err(Error::KindMismatch {
                expected: "buffer",
                ..
            })
        ));
        // Nothing was lost: both messages are still there for the right receive.
        let mut right = [0f64; 2];
        comm.recv_buf(&mut right, 0, 1)?;
        assert_eq!(right, [1.5, 2.5]);
        assert_eq!(comm.recv::<(u8, u8, u8)>(0, 2)?, (1, 2, 3));
    }
    comm.barrier()
}

fn nonblocking(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let right = (r + 1) % n;
    let left = (r + n - 1) % n;
    // Everyone sends first, then receives: fine with non-blocking calls.
    let send = comm.isend(&record(r), right, 1)?;
    let recv: Request<Record> = comm.irecv(left, 1)?;
    let (got, status) = recv.wait_status()?;
    assert_eq!(got, record(left));
    assert_eq!(status.map(|s| s.source()), Some(left));
    send.wait()?;

    // Large buffers both ways at once cannot deadlock either.
    let big: Vec<f32> = vec![r as f32; 2 << 20];
    let sends = vec![comm.isend_buf(&big, right, 2)?];
    let got: Vec<f32> = comm.irecv_buf::<f32>(2 << 20, left, 2)?.wait()?;
    assert!(got.iter().all(|v| *v == left as f32));
    wait_all(sends)?;

    // wait_any and test.
    let mut reqs = Vec::new();
    for tag in 0..3 {
        reqs.push(comm.irecv::<i32>(left, 10 + tag)?);
    }
    for tag in (0..3).rev() {
        comm.send(&(tag * 100), right, 10 + tag)?;
    }
    let mut values = Vec::new();
    while !reqs.is_empty() {
        let (_, value) = wait_any(&mut reqs)?;
        values.push(value);
    }
    values.sort();
    assert_eq!(values, vec![0, 100, 200]);

    let mut req = comm.irecv::<String>(left, 20)?;
    comm.barrier()?;
    comm.send(&"done".to_string(), right, 20)?;
    let value = loop {
        if let Some(value) = req.test()? {
            break value;
        }
        std::thread::yield_now();
    };
    assert_eq!(value, "done");
    assert!(matches!(req.test(), Err(Error::RequestDone)));

    // A dropped receive is cancelled, and its message stays for the next receive.
    let dropped = comm.irecv::<u32>(left, 30)?;
    drop(dropped);
    comm.send(&7u32, right, 30)?;
    assert_eq!(comm.recv::<u32>(left, 30)?, 7);
    comm.barrier()
}

fn sendrecv(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let right = (r + 1) % n;
    let left = (r + n - 1) % n;
    let got: usize = comm.sendrecv(&r, right, 4, left, 4)?;
    assert_eq!(got, left);
    // Buffers larger than a ring, every rank sending at once: the deadlock that
    // blocking sends invite, avoided.
    let send = vec![r as i64; 3 << 20];
    let mut recv = vec![-1i64; 3 << 20];
    let status = comm.sendrecv_buf(&send, right, 5, &mut recv, left, 5)?;
    assert_eq!(status.count(), 3 << 20);
    assert!(recv.iter().all(|v| *v == left as i64));
    Ok(())
}

fn probe(comm: &Comm) -> Result<(), Error> {
    let r = comm.rank();
    if r == 0 {
        comm.send_buf(&[1u16, 2, 3], 1, 77)?;
    } else if r == 1 {
        let status = comm.probe(ANY_SOURCE, ANY_TAG)?;
        assert_eq!(
            (status.source(), status.tag(), status.count_of::<u16>()),
            (0, 77, Some(3))
        );
        assert!(!status.is_object());
        if comm.backend() == BackendKind::Native {
            // MPI messages do not carry their element type; this backend's do.
            assert_eq!(status.count(), 3);
        }
        let mut buf = vec![0u16; 3];
        comm.recv_buf(&mut buf, status.source(), status.tag())?;
        assert_eq!(buf, vec![1, 2, 3]);
        assert!(comm.iprobe(0, 77)?.is_none());
    }
    comm.barrier()?;
    if r == 1 {
        comm.send(&"x", 0, 78)?;
    }
    if r == 0 {
        let status = loop {
            if let Some(status) = comm.iprobe(1, 78)? {
                break status;
            }
            std::thread::yield_now();
        };
        assert_eq!(status.source(), 1);
        assert_eq!(comm.recv::<String>(1, 78)?, "x");
    }
    comm.barrier()
}

fn object_collectives(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    for root in 0..n {
        let value = (r == root).then(|| record(root));
        assert_eq!(comm.bcast(value, root)?, record(root));
    }
    let items = (r == 1 % n).then(|| (0..n).map(|i| format!("item {i}")).collect());
    assert_eq!(comm.scatter(items, 1 % n)?, format!("item {r}"));
    let gathered = comm.gather(&(r * r), n - 1)?;
    if r == n - 1 {
        assert_eq!(gathered, Some((0..n).map(|i| i * i).collect()));
    } else {
        assert_eq!(gathered, None);
    }
    assert_eq!(comm.allgather(&r)?, (0..n).collect::<Vec<_>>());
    let out: Vec<(usize, usize)> = (0..n).map(|j| (r, j)).collect();
    let back = comm.alltoall(out)?;
    assert_eq!(back, (0..n).map(|i| (i, r)).collect::<Vec<_>>());
    comm.barrier()?;
    assert!(matches!(
        comm.bcast::<u8>(None, n),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

fn buffer_collectives(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let mut buf = if r == 0 {
        vec![3.25f64; 1000]
    } else {
        vec![0.0; 1000]
    };
    comm.bcast_buf(&mut buf, 0)?;
    assert!(buf.iter().all(|v| *v == 3.25));

    let root = n - 1;
    let all: Vec<i32> = (0..(n * 5) as i32).collect();
    let mut part = [0i32; 5];
    comm.scatter_buf((r == root).then_some(&all[..]), &mut part, root)?;
    assert_eq!(
        part.to_vec(),
        (r as i32 * 5..r as i32 * 5 + 5).collect::<Vec<_>>()
    );

    let mut gathered = vec![0i32; n * 5];
    comm.gather_buf(&part, (r == 0).then_some(&mut gathered[..]), 0)?;
    if r == 0 {
        assert_eq!(gathered, all);
    }
    let mut everyone = vec![0i32; n * 5];
    comm.allgather_buf(&part, &mut everyone)?;
    assert_eq!(everyone, all);

    let send: Vec<u64> = (0..n).map(|j| (r * 10 + j) as u64).collect();
    let mut recv = vec![0u64; n];
    comm.alltoall_buf(&send, &mut recv)?;
    assert_eq!(
        recv,
        (0..n).map(|i| (i * 10 + r) as u64).collect::<Vec<_>>()
    );
    // A buffer of the wrong length is refused on every rank before anything is sent.
    assert!(matches!(
        comm.allgather_buf(&part, &mut everyone[1..]),
        Err(Error::InvalidArgument(_))
    ));
    let mut wrong = vec![0.0f32; 1000];
    if comm.backend() != BackendKind::Native {
        // In an MPI collective, every rank must pass the root's type and length, as MPI
        // requires: a mismatch is not detected there.
    } else if r != 0 {
        // The root sends f64s: a buffer of f32 is refused, not reinterpreted.
        let error = comm.bcast_buf(&mut wrong, 0);
        assert!(
            matches!(error, Err(Error::TypeMismatch { .. })),
            "{error:?}"
        );
        comm.bcast_buf(&mut buf, 0)?;
    } else {
        comm.bcast_buf(&mut buf, 0)?;
    }
    comm.barrier()
}

fn v_collectives(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let counts: Vec<usize> = (0..n).map(|i| i + 1).collect();
    let displs: Vec<usize> = counts
        .iter()
        .scan(0, |acc, c| {
            let d = *acc;
            *acc += c + 1; // a gap between blocks
            Some(d)
        })
        .collect();
    let total = displs[n - 1] + counts[n - 1];
    let data: Vec<i64> = (0..total as i64).collect();
    let mut mine = vec![0i64; r + 1];
    comm.scatterv_buf(
        (r == 0).then_some((&data[..], &counts[..], &displs[..])),
        &mut mine,
        0,
    )?;
    assert_eq!(mine, data[displs[r]..displs[r] + counts[r]].to_vec());

    let mut back = vec![-1i64; total];
    comm.gatherv_buf(
        &mine,
        (r == 0).then_some((&mut back[..], &counts[..], &displs[..])),
        0,
    )?;
    if r == 0 {
        for i in 0..n {
            assert_eq!(
                back[displs[i]..displs[i] + counts[i]],
                data[displs[i]..displs[i] + counts[i]]
            );
        }
    }
    let mut everywhere = vec![-1i64; total];
    comm.allgatherv_buf(&mine, &mut everywhere, &counts, &displs)?;
    for i in 0..n {
        assert_eq!(
            everywhere[displs[i]..displs[i] + counts[i]],
            data[displs[i]..displs[i] + counts[i]]
        );
    }
    let bad = comm.allgatherv_buf(&mine, &mut everywhere, &counts[1..], &displs);
    assert!(matches!(bad, Err(Error::InvalidArgument(_))));
    comm.barrier()
}

fn reductions(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let x = r as i64 + 1;
    let seq: Vec<i64> = (1..=n as i64).collect();
    let fold = |f: fn(i64, i64) -> i64| seq.iter().copied().reduce(f).unwrap();
    let cases: Vec<(Op<i64>, i64)> = vec![
        (Op::sum(), fold(|a, b| a + b)),
        (Op::prod(), fold(|a, b| a * b)),
        (Op::min(), 1),
        (Op::max(), n as i64),
        (Op::land(), 1),
        (Op::lor(), 1),
        (Op::band(), fold(|a, b| a & b)),
        (Op::bor(), fold(|a, b| a | b)),
    ];
    for (op, want) in cases {
        let name = op.name();
        let reduced = comm.reduce(&x, op.clone(), 0)?;
        if r == 0 {
            assert_eq!(reduced, Some(want), "reduce {name}");
        }
        assert_eq!(comm.allreduce(&x, op)?, want, "allreduce {name}");
    }
    let f = comm.allreduce(&(r as f64 * 0.5), Op::max())?;
    assert_eq!(f, (n - 1) as f64 * 0.5);
    // An operation the type lacks fails on every rank, at the root as itself.
    let error = comm.allreduce(&1.0f64, Op::band()).unwrap_err();
    if r == 0 {
        assert!(
            matches!(error, Error::OpNotDefined { op: "BAND", .. }),
            "{error:?}"
        );
    } else {
        assert!(matches!(error, Error::Remote { rank: 0, .. }), "{error:?}");
    }
    let mut out = [0.0f64; 2];
    let error = comm
        .allreduce_buf(&[1.0f64, 2.0], &mut out, Op::bor())
        .unwrap_err();
    assert!(
        matches!(error, Error::OpNotDefined { op: "BOR", .. }),
        "{error:?}"
    );
    // Rank 0's inclusive scan is its own value; the others cannot combine.
    let scanned = comm.scan(&1.5f64, Op::band());
    match (r, scanned) {
        (0, Ok(v)) => assert_eq!(v, 1.5),
        (1, Err(Error::OpNotDefined { .. })) => {}
        (_, Err(Error::Remote { rank: 1, .. })) if r > 1 => {}
        (_, other) => panic!("scan with BAND of f64 on rank {r}: {other:?}"),
    }
    // MAXLOC / MINLOC with ties going to the smaller index.
    let value = [3.0, 7.0, 7.0, 1.0][r];
    let max = comm.allreduce(&Loc::new(value, r as i64), Op::maxloc())?;
    assert_eq!(max, Loc::new(7.0, 1));
    let min = comm.allreduce(&Loc::new(value, r as i64), Op::minloc())?;
    assert_eq!(
        min,
        if n == 4 {
            Loc::new(1.0, 3)
        } else {
            Loc::new(3.0, 0)
        }
    );
    // A non-commutative user operation is applied in rank order.
    let concat = Op::user(|a: &String, b: &String| format!("{a}{b}"), false);
    let word = ((b'a' + r as u8) as char).to_string();
    let all: String = (0..n).map(|i| (b'a' + i as u8) as char).collect();
    assert_eq!(comm.allreduce(&word, concat.clone())?, all);
    assert_eq!(comm.scan(&word, concat.clone())?, all[..=r]);
    assert_eq!(
        comm.exscan(&word, concat)?,
        (r > 0).then(|| all[..r].to_string())
    );
    // Element by element on vectors.
    let v = vec![x, -x, 2 * x];
    let summed = comm.allreduce(&v, Op::sum())?;
    let s = seq.iter().sum::<i64>();
    assert_eq!(summed, vec![s, -s, 2 * s]);
    assert_eq!(comm.scan(&x, Op::sum())?, (1..=x).sum::<i64>());
    Ok(())
}

fn buffer_reductions(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let len = 100_000;
    let send: Vec<f64> = (0..len).map(|i| (i % 7) as f64 + r as f64).collect();
    let want = |i: usize| (0..n).map(|k| (i % 7) as f64 + k as f64).sum::<f64>();
    for root in 0..n {
        let mut recv = vec![0.0; len];
        comm.reduce_buf(&send, (r == root).then_some(&mut recv[..]), Op::sum(), root)?;
        if r == root {
            assert!(recv.iter().enumerate().all(|(i, v)| *v == want(i)));
        }
    }
    let mut all = vec![0.0; len];
    comm.allreduce_buf(&send, &mut all, Op::sum())?;
    assert!(all.iter().enumerate().all(|(i, v)| *v == want(i)));
    let mut max = vec![0.0; len];
    comm.allreduce_buf(&send, &mut max, Op::max())?;
    assert!(
        max.iter()
            .enumerate()
            .all(|(i, v)| *v == (i % 7) as f64 + (n - 1) as f64)
    );

    let ints = [r as u32 + 1, 1 << r, 7];
    let mut scanned = [0u32; 3];
    comm.scan_buf(&ints, &mut scanned, Op::sum())?;
    assert_eq!(scanned[0], (1..=r as u32 + 1).sum::<u32>());
    let mut ex = [99u32; 3];
    comm.exscan_buf(&ints, &mut ex, Op::bor())?;
    if r == 0 {
        assert_eq!(ex, [99; 3]);
    } else {
        assert_eq!(ex[1], (1u32 << r) - 1);
    }
    // A non-commutative user operation on buffers (2x2 matrix products, flattened per
    // element as "keep the left operand": the result is rank 0's value).
    let left = Op::user(|a: &i32, _b: &i32| *a, false);
    let mut out = [0i32; 2];
    comm.allreduce_buf(&[r as i32, 10 + r as i32], &mut out, left.clone())?;
    assert_eq!(out, [0, 10]);
    let locs = [Loc::new(r as f64, r as i64)];
    let mut best = [Loc::new(0.0, 0)];
    comm.allreduce_buf(&locs, &mut best, Op::maxloc())?;
    assert_eq!(best[0], Loc::new((n - 1) as f64, (n - 1) as i64));
    Ok(())
}

/// `x -> value * x + index` (wrapping) for a rank and an element: composing such maps is
/// associative but not commutative, so a reduction that reorders ranks gives another map.
fn affine(rank: usize, i: usize) -> Loc<u64> {
    Loc::new(2 * (rank * 7 + i) as u64 + 3, (rank * 1000 + i) as i64)
}

/// Applies `f`, then `g`.
fn then(f: &Loc<u64>, g: &Loc<u64>) -> Loc<u64> {
    Loc::new(
        g.value.wrapping_mul(f.value),
        (g.value.wrapping_mul(f.index as u64)).wrapping_add(g.index as u64) as i64,
    )
}

/// Reductions of buffers larger than a ring's chunk with a non-commutative operation, of
/// odd lengths, after messages of odd byte sizes, and of a contribution that arrived
/// before the reduction began: every rank's share is combined in rank order.
fn large_ordered_reductions(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let compose = Op::user(then, false);
    let want = |len: usize| -> Vec<Loc<u64>> {
        (0..len)
            .map(|i| (1..n).fold(affine(0, i), |acc, k| then(&acc, &affine(k, i))))
            .collect()
    };
    // Odd byte counts ahead of the reductions leave the rings at odd positions.
    for (k, len) in [3usize, 65_537, 131_071].into_iter().enumerate() {
        if r == 0 {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            comm.send_buf(&bytes, n - 1, 20 + k as i32)?;
        } else if r == n - 1 {
            let mut bytes = vec![0u8; len];
            comm.recv_buf(&mut bytes, 0, 20 + k as i32)?;
            assert!(bytes.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8));
        }
    }
    for len in [1usize, 5, 4_099, 70_001] {
        let send: Vec<Loc<u64>> = (0..len).map(|i| affine(r, i)).collect();
        let expected = want(len);
        let mut all = vec![Loc::new(0, 0); len];
        comm.allreduce_buf(&send, &mut all, compose.clone())?;
        assert!(all == expected, "allreduce of {len} on {n} ranks");
        for root in 0..n {
            let mut at_root = vec![Loc::new(0, 0); len];
            comm.reduce_buf(
                &send,
                (r == root).then_some(&mut at_root[..]),
                compose.clone(),
                root,
            )?;
            assert!(
                r != root || at_root == expected,
                "reduce of {len} to {root}"
            );
        }
    }
    if comm.backend() != BackendKind::Native {
        // MPI lets a reduction wait for the root, so rank 1 could not send after it.
        return comm.barrier();
    }
    // Rank 1's share is in rank 0's queue before rank 0 starts the reduction.
    let len = 50_000;
    let send: Vec<Loc<u64>> = (0..len).map(|i| affine(r, i)).collect();
    let mut at_root = vec![Loc::new(0, 0); len];
    if r == 1 {
        comm.reduce_buf(&send, None, compose.clone(), 0)?;
        comm.send(&"sent", 0, 30)?;
    } else if r == 0 {
        assert_eq!(comm.recv::<String>(1, 30)?, "sent");
        comm.reduce_buf(&send, Some(&mut at_root[..]), compose.clone(), 0)?;
        assert!(at_root == want(len), "reduce of a queued share");
    } else {
        comm.reduce_buf(&send, None, compose.clone(), 0)?;
    }
    comm.barrier()
}

/// Point-to-point buffers of an odd length larger than a ring's chunk: into a receive
/// buffer, into a posted `irecv_buf`, after a receive of the wrong type refused one, and
/// sent by two ranks to each other at once.
/// Broadcasts and reductions of buffers large enough for the native backend's single-copy
/// hand-off: from and to every root, of an odd byte length, and a leaf with a buffer of
/// the wrong type.
fn large_bcast(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let len = 1 << 20;
    let data =
        |root: usize| -> Vec<f64> { (0..len).map(|i| i as f64 * 0.5 + root as f64).collect() };
    for root in 0..n {
        let mut buf = if r == root {
            data(root)
        } else {
            vec![0.0; len]
        };
        comm.bcast_buf(&mut buf, root)?;
        assert!(buf == data(root), "bcast of 8 MiB from {root}");
    }
    let odd = (1 << 20) + 7;
    let bytes =
        |seed: usize| -> Vec<u8> { (0..odd).map(|i| ((i * 13 + seed) % 256) as u8).collect() };
    let mut buf = if r == 1 { bytes(1) } else { vec![0u8; odd] };
    comm.bcast_buf(&mut buf, 1)?;
    assert!(buf == bytes(1), "bcast of an odd length");
    if comm.backend() == BackendKind::Native {
        // The last rank is a leaf of the tree from rank 0. Its buffer has the right length
        // in bytes but the wrong type: it is refused there, and its parent (the rank that
        // offered it) fails too, after serving its other children.
        let leaf = n - 1;
        let parent = leaf & (leaf - 1);
        let result = if r == leaf {
            let mut wrong = vec![0u32; 2 * len];
            comm.bcast_buf(&mut wrong, 0)
        } else {
            let mut buf = if r == 0 { data(0) } else { vec![0.0; len] };
            let result = comm.bcast_buf(&mut buf, 0);
            if r != parent {
                assert!(buf == data(0), "rank {r} got the bcast beside the refusal");
            }
            result
        };
        if r == leaf {
            assert!(
                matches!(result, Err(Error::TypeMismatch { .. })),
                "{result:?}"
            );
        } else if r == parent {
            assert!(
                matches!(result, Err(Error::InvalidArgument(_))),
                "{result:?}"
            );
        } else {
            result?;
        }
        // Nothing of the refused hand-off is left over.
        let mut buf = if r == 0 { data(0) } else { vec![0.0; len] };
        comm.bcast_buf(&mut buf, 0)?;
        assert!(buf == data(0));
    }
    // Reductions of the same size, to every root: each rank's value is data(rank).
    let mine = data(r);
    let total: f64 = (0..n).map(|k| k as f64).sum();
    for root in 0..n {
        let mut sum = vec![0.0; len];
        comm.reduce_buf(&mine, (r == root).then_some(&mut sum[..]), Op::sum(), root)?;
        if r == root {
            let want = |i: usize| i as f64 * 0.5 * n as f64 + total;
            assert!(
                sum.iter().enumerate().all(|(i, s)| *s == want(i)),
                "reduce of 8 MiB at {root}"
            );
        }
    }
    comm.barrier()
}

fn large_point_to_point(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let len = (1 << 20) + 3;
    let data =
        |seed: usize| -> Vec<u8> { (0..len).map(|i| ((i * 7 + seed) % 256) as u8).collect() };
    let last = n - 1;
    if r == 0 {
        comm.send_buf(&data(1), last, 1)?;
        comm.send_buf(&data(2), last, 2)?;
        comm.send_buf(&data(3), last, 3)?;
    } else if r == last {
        let mut buf = vec![0u8; len];
        let status = comm.recv_buf(&mut buf, 0, 1)?;
        assert_eq!(status.count(), len);
        assert!(buf == data(1));
        let posted = comm.irecv_buf::<u8>(len, 0, 2)?;
        assert!(posted.wait()? == data(2));
        let mut wrong = vec![0u16; len];
        let error = comm.recv_buf(&mut wrong, 0, 3);
        if comm.backend() == BackendKind::Native {
            assert!(
                matches!(error, Err(Error::TypeMismatch { .. })),
                "{error:?}"
            );
        } else {
            // MPI messages carry no element type: an odd byte count is what shows.
            assert!(
                matches!(error, Err(Error::NotWholeElements { .. })),
                "{error:?}"
            );
        }
        comm.recv_buf(&mut buf, 0, 3)?;
        assert!(buf == data(3));
    }
    // Both at once: each one's send completes while the other is in its own send (MPI's
    // MPI_Send may wait for the receive, so this deadlocks there, as in MPI).
    if r < 2 && comm.backend() == BackendKind::Native {
        let peer = 1 - r;
        comm.send_buf(&data(10 + r), peer, 4)?;
        let mut buf = vec![0u8; len];
        comm.recv_buf(&mut buf, peer, 4)?;
        assert!(buf == data(10 + peer));
    }
    comm.barrier()
}

fn communicators(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let dup = comm.dup()?;
    assert_eq!((dup.rank(), dup.size()), (r, n));
    // Messages on one communicator never match receives on another.
    if r == 0 {
        comm.send(&"world", 1, 0)?;
        dup.send(&"dup", 1, 0)?;
    } else if r == 1 {
        assert_eq!(dup.recv::<String>(0, 0)?, "dup");
        assert_eq!(comm.recv::<String>(0, 0)?, "world");
    }
    // Split into evens and odds, numbered in reverse by key.
    let half = comm
        .split(Some((r % 2) as u32), -(r as i64))?
        .expect("a colour was given");
    let members: Vec<usize> = (0..n).filter(|i| i % 2 == r % 2).collect();
    assert_eq!(half.size(), members.len());
    assert_eq!(
        half.rank(),
        members.len() - 1 - members.iter().position(|m| *m == r).unwrap()
    );
    let world_ranks = half.allgather(&r)?;
    assert_eq!(
        world_ranks,
        members.iter().rev().copied().collect::<Vec<_>>()
    );
    let sum = half.allreduce(&r, Op::sum())?;
    assert_eq!(sum, members.iter().sum::<usize>());
    let none = comm.split(if r == 0 { None } else { Some(1) }, 0)?;
    assert_eq!(none.is_none(), r == 0);
    if let Some(rest) = none {
        assert_eq!(rest.size(), n - 1);
        rest.barrier()?;
    }
    comm.barrier()
}

fn cartesian(comm: &Comm) -> Result<(), Error> {
    let (r, n) = (comm.rank(), comm.size());
    let dims = dims_create(n, &[0, 0])?;
    assert_eq!(dims.iter().product::<usize>(), n);
    let cart = comm
        .create_cart(&dims, &[true, false], false)?
        .expect("every rank is on the grid");
    let coords = cart.coords(cart.rank())?;
    let as_i64: Vec<i64> = coords.iter().map(|c| *c as i64).collect();
    assert_eq!(cart.rank_of(&as_i64)?, cart.rank());
    let (src, dst) = cart.shift(0, 1)?;
    let up = cart.rank_of(&[as_i64[0] + 1, as_i64[1]])?;
    let down = cart.rank_of(&[as_i64[0] - 1, as_i64[1]])?;
    assert_eq!((src, dst), (Some(down), Some(up)));
    let (left, right) = cart.shift(1, 1)?;
    assert_eq!(left.is_none(), coords[1] == 0);
    assert_eq!(right.is_none(), coords[1] == dims[1] - 1);
    assert_eq!(cart.neighbours()?.len(), 2);
    // Pass a token around the periodic dimension.
    let got: usize = cart.sendrecv(&cart.rank(), dst.unwrap(), 0, src.unwrap(), 0)?;
    assert_eq!(got, down);
    // A grid smaller than the communicator leaves the others out.
    let line = comm.create_cart(&[1], &[false], true)?;
    assert_eq!(line.is_some(), r == 0);
    assert!(comm.create_cart(&[n + 1], &[false], false).is_err());
    comm.barrier()
}

fn environment(comm: &Comm) -> Result<(), Error> {
    let t0 = wtime();
    comm.barrier()?;
    assert!(wtime() >= t0);
    assert!(!processor_name().is_empty());
    let names = comm.allgather(&processor_name())?;
    assert!(names.iter().all(|name| *name == names[0]));
    Ok(())
}
