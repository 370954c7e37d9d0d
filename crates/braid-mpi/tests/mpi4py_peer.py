"""The mpi4py side of the MPMD interop job in tests/openmpi.rs (world rank 1; the braid
program is rank 0). Exits non-zero when a value is not what braid sent."""

import sys
from array import array

from mpi4py import MPI

comm = MPI.COMM_WORLD


def abort_job(kind, value, traceback):
    """A failed check ends the whole job, instead of leaving braid waiting."""
    sys.__excepthook__(kind, value, traceback)
    comm.Abort(1)


sys.excepthook = abort_job
assert (comm.Get_rank(), comm.Get_size()) == (1, 2), "python is rank 1 of 2"
braid = 0

# Typed buffers both ways, with tags.
got = array("d", [0.0] * 3)
status = MPI.Status()
comm.Recv([got, MPI.DOUBLE], source=braid, tag=7, status=status)
assert (status.Get_source(), status.Get_tag(), status.Get_count(MPI.DOUBLE)) == (0, 7, 3)
assert list(got) == [1.5, 2.5, 3.5], list(got)
comm.Send([array("i", [10, 20, 30, 40]), MPI.INT32_T], dest=braid, tag=8)
comm.Send([array("d", [2 * x for x in got]), MPI.DOUBLE], dest=braid, tag=9)
comm.Send([array("H", [7, 8, 9]), MPI.UINT16_T], dest=braid, tag=10)

# Collectives with braid taking part.
data = array("d", [0.0] * 5)
comm.Bcast([data, MPI.DOUBLE], root=0)
assert list(data) == [0.25, 0.5, 0.75, 1.0, 1.25], list(data)
comm.Bcast([array("q", [-1, 2, -3, 4]), MPI.INT64_T], root=1)
total = array("d", [0.0] * 6)
comm.Allreduce([array("d", [100.0 * i for i in range(6)]), MPI.DOUBLE], [total, MPI.DOUBLE], op=MPI.SUM)
assert list(total) == [101.0 * i for i in range(6)], list(total)
biggest = array("i", [0, 0])
comm.Allreduce([array("i", [1, 6]), MPI.INT32_T], [biggest, MPI.INT32_T], op=MPI.MAX)
assert list(biggest) == [5, 6], list(biggest)
everyone = array("i", [0] * 4)
comm.Allgather([array("i", [3, 4]), MPI.INT32_T], [everyone, MPI.INT32_T])
assert list(everyone) == [1, 2, 3, 4], list(everyone)
comm.Barrier()
print("ok   mpi4py saw what braid sent", file=sys.stderr)
