//! The suite with ranks as threads, on 2, 3 and 4 ranks, and what happens when a rank
//! fails or finishes early.

mod common;

use std::time::Duration;

use braid_mpi::{Error, Op, run_threads};

fn run_case(name: &str, f: common::Body) {
    for n in 2..=4 {
        let results =
            run_threads(n, |comm| f(&comm)).unwrap_or_else(|e| panic!("{name} on {n} ranks: {e}"));
        for (rank, result) in results.into_iter().enumerate() {
            if let Err(e) = result {
                panic!("{name} on {n} ranks: rank {rank}: {e}");
            }
        }
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let f = common::case(stringify!($name)).expect("a case of that name");
            run_case(stringify!($name), f);
        }
    )*};
}

suite!(
    p2p_objects,
    any_source_any_tag,
    buffers,
    large_buffers,
    large_bcast,
    wrong_type_is_an_error,
    nonblocking,
    sendrecv,
    probe,
    object_collectives,
    buffer_collectives,
    v_collectives,
    reductions,
    buffer_reductions,
    large_ordered_reductions,
    large_point_to_point,
    communicators,
    cartesian,
    environment,
);

#[test]
fn every_case_is_in_the_suite() {
    assert_eq!(common::cases().len(), 19);
}

#[test]
fn a_rank_that_panics_aborts_the_others() {
    for n in 2..=4 {
        let outcome = run_threads(n, |comm| {
            if comm.rank() == 1 {
                panic!("rank 1 gives up");
            }
            // Blocked on the failed rank, or in a collective it never joins.
            let error = if comm.rank() == 0 {
                comm.recv::<u64>(1, 0).unwrap_err()
            } else {
                comm.barrier().unwrap_err()
            };
            assert!(matches!(error, Error::Aborted { rank: 1 }), "{error:?}");
        });
        match outcome {
            Err(Error::RankFailed { rank: 1, message }) => assert!(message.contains("gives up")),
            other => panic!("expected rank 1 to fail, got {other:?}"),
        }
    }
}

#[test]
fn a_rank_that_panics_before_a_large_bcast_or_reduce_aborts_the_others() {
    for (n, reduce) in (2..=4).flat_map(|n| [(n, false), (n, true)]) {
        let outcome = run_threads(n, |comm| {
            if comm.rank() == 1 {
                panic!("rank 1 gives up");
            }
            // Large enough for a single-copy hand-off: rank 1's parent (or the root of
            // the reduction) waits for an answer that never comes, the other ranks for
            // theirs or at the barrier.
            let mut buf = vec![comm.rank() as f64; 1 << 20];
            let mut sum = vec![0.0; 1 << 20];
            let root = comm.rank() == 0;
            let error = if reduce {
                comm.reduce_buf(&buf, root.then_some(&mut sum[..]), Op::sum(), 0)
            } else {
                comm.bcast_buf(&mut buf, 0)
            }
            .and_then(|()| comm.barrier())
            .unwrap_err();
            assert!(matches!(error, Error::Aborted { rank: 1 }), "{error:?}");
        });
        assert!(
            matches!(outcome, Err(Error::RankFailed { rank: 1, .. })),
            "{outcome:?}"
        );
    }
}

#[test]
fn a_rank_that_finishes_early_is_reported() {
    let results = run_threads(2, |comm| {
        if comm.rank() == 0 {
            Some(comm.recv::<u64>(1, 0).unwrap_err())
        } else {
            None
        }
    })
    .unwrap();
    assert!(matches!(results[0], Some(Error::PeerGone { rank: 1 })));
}

#[test]
fn sends_still_queued_at_the_end_are_delivered() {
    let results = run_threads(2, |comm| {
        if comm.rank() == 0 {
            // Bigger than the ring: most of it is still queued when rank 0 returns.
            let big = vec![7u8; 20 << 20];
            let request = comm.isend_buf(&big, 1, 0).unwrap();
            drop(request);
            0
        } else {
            std::thread::sleep(Duration::from_millis(50));
            let got = comm
                .irecv_buf::<u8>(20 << 20, 0, 0)
                .unwrap()
                .wait()
                .unwrap();
            got.len()
        }
    })
    .unwrap();
    assert_eq!(results[1], 20 << 20);
}

#[test]
fn an_aborted_job_fails_every_later_call() {
    let results = run_threads(3, |comm| {
        if comm.rank() == 2 {
            comm.abort();
            return None;
        }
        Some(comm.allreduce(&1u32, braid_mpi::Op::sum()).unwrap_err())
    })
    .unwrap();
    assert!(matches!(results[0], Some(Error::Aborted { rank: 2 })));
    assert!(matches!(results[1], Some(Error::Aborted { rank: 2 })));
}

#[test]
fn public_types_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<braid_mpi::Comm>();
    send_sync::<braid_mpi::CartComm>();
    send_sync::<braid_mpi::Error>();
    send_sync::<braid_mpi::Op<f64>>();
    send::<braid_mpi::Request<Vec<f64>>>();
}
