"""The Python side of `braid bench mpi`: the same cases with mpi4py on Open MPI.

Usage (see README.md for the protocol):

    python mpi.py CASE --repeats N --iterations SIZE [--quick]

The script starts itself under `mpirun -n 2` (two ranks, as braid's side) and prints one
JSON object on its last line of stdout. The headline is mpi4py with numpy buffers (the
upper-case calls: Send/Recv, Bcast, Reduce, Allreduce); the note gives the same work with
pickled objects (send/recv, bcast, reduce, allreduce). `object_send` is pickled objects.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

CASES = [
    "latency_8b",
    "latency_1mib",
    "object_send",
    "bcast_1m_doubles",
    "reduce_1m_doubles",
    "allreduce_1m_doubles",
]
UNITS = {
    "latency_8b": ("us", 1e6),
    "latency_1mib": ("us", 1e6),
    "object_send": ("us", 1e6),
    "bcast_1m_doubles": ("ms", 1e3),
    "reduce_1m_doubles": ("ms", 1e3),
    "allreduce_1m_doubles": ("ms", 1e3),
}


def ping_pong(comm, np, n, nbytes, objects):
    rank = comm.Get_rank()
    peer = 1 - rank
    buf = np.zeros(nbytes, dtype="u1")

    def once():
        if objects:
            if rank == 0:
                comm.send(buf, dest=peer)
                comm.recv(source=peer)
            else:
                comm.send(comm.recv(source=peer), dest=peer)
        else:
            if rank == 0:
                comm.Send(buf, dest=peer)
                comm.Recv(buf, source=peer)
            else:
                comm.Recv(buf, source=peer)
                comm.Send(buf, dest=peer)

    for _ in range(min(n, 100)):
        once()
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(n):
        once()
    return (time.perf_counter() - start) / n / 2


def object_send(comm, n):
    rank = comm.Get_rank()
    peer = 1 - rank
    record = {"name": "braid", "id": 42, "score": 0.5, "values": [1, 2, 3]}

    def once():
        if rank == 0:
            comm.send(record, dest=peer)
            back = comm.recv(source=peer)
            assert back["id"] == 42
        else:
            comm.send(comm.recv(source=peer), dest=peer)

    for _ in range(min(n, 100)):
        once()
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(n):
        once()
    return (time.perf_counter() - start) / n / 2


def collective(comm, MPI, np, case, n, objects):
    rank = comm.Get_rank()
    a = np.full(1 << 20, rank + 1.0)
    b = np.zeros(1 << 20)

    def once():
        nonlocal b
        if case == "bcast_1m_doubles":
            if objects:
                got = comm.bcast(a if rank == 0 else None, root=0)
                assert got[12345] == 1.0
            else:
                comm.Bcast(a, root=0)
        elif case == "reduce_1m_doubles":
            if objects:
                got = comm.reduce(a, op=MPI.SUM, root=0)
                assert rank != 0 or got[777] == 3.0
            else:
                comm.Reduce(a, b if rank == 0 else None, op=MPI.SUM, root=0)
        else:
            if objects:
                got = comm.allreduce(a, op=MPI.SUM)
                assert got[777] == 3.0
            else:
                comm.Allreduce(a, b, op=MPI.SUM)

    once()
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(n):
        once()
    elapsed = (time.perf_counter() - start) / n
    if not objects:
        if case == "bcast_1m_doubles":
            assert a[12345] == 1.0
        elif rank == 0 or case == "allreduce_1m_doubles":
            assert b[777] == 3.0
    return elapsed


def rank_main(case, repeats, n):
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    buffers, objects = [], []
    for _ in range(repeats):
        if case == "latency_8b":
            buffers.append(ping_pong(comm, np, n, 8, False))
            objects.append(ping_pong(comm, np, n, 8, True))
        elif case == "latency_1mib":
            buffers.append(ping_pong(comm, np, n, 1 << 20, False))
            objects.append(ping_pong(comm, np, n, 1 << 20, True))
        elif case == "object_send":
            objects.append(object_send(comm, n))
        else:
            buffers.append(collective(comm, MPI, np, case, n, False))
            objects.append(collective(comm, MPI, np, case, max(n // 4, 1), True))
    if comm.Get_rank() == 0:
        unit, scale = UNITS[case]
        obj = statistics.median(objects) * scale
        if buffers:
            value = statistics.median(buffers) * scale
            note = f"mpi4py numpy buffers; pickled objects {obj:.3g} {unit}"
        else:
            value = obj
            note = "mpi4py pickled dict"
        print(json.dumps({"unit": unit, "value": value, "note": note}))


def main():
    parser = argparse.ArgumentParser()
    # braid's `_openmpi` rows (its ranks on Open MPI) compare with the same mpi4py work.
    parser.add_argument("case", choices=CASES + [c + "_openmpi" for c in CASES])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.case = args.case.removesuffix("_openmpi")
    if args.rank:
        rank_main(args.case, args.repeats, args.iterations)
        return
    try:
        import mpi4py  # noqa: F401  (only checks it is there; MPI starts in the ranks)
        import numpy  # noqa: F401
    except ImportError as e:
        print(json.dumps({"missing": e.name or "mpi4py"}))
        return
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        print(json.dumps({"missing": "openmpi-bin (mpirun)"}))
        return
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [
        mpirun, "-n", "2", sys.executable, os.path.abspath(__file__), args.case,
        "--repeats", str(args.repeats), "--iterations", str(args.iterations), "--rank",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        sys.exit(f"mpirun exited with {done.returncode}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.stderr.write(done.stderr)
        sys.exit("the ranks printed no result")
    print(lines[-1])


if __name__ == "__main__":
    main()
