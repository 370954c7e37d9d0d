"""The Python side of `braid bench gpu`: the same work as braid's cases.

CUDA cases use CuPy, whose ElementwiseKernel, ReductionKernel and RawKernel follow PyCUDA's
API (PyCUDA itself cannot be installed without a CUDA toolkit); OpenCL cases use PyOpenCL.
GPU work is timed with device events, OpenCL work with the host clock up to
`queue.finish()`, exactly as braid times its side.

Usage (see README.md for the protocol):

    python gpu.py CASE --repeats N --iterations SIZE [--quick]

Prints one JSON object on its last line of stdout and exits 0.
"""

import argparse
import json
import statistics
import sys
import time

INNER = 10


def missing(package):
    print(json.dumps({"missing": package}))
    return 0


def cupy_or_none():
    try:
        import cupy
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # no driver or no device: CuPy raises its own error types
        return None
    return cupy


def timed(cp, work):
    """Seconds per run of `work`, INNER runs between two device events."""
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(INNER):
        work()
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / 1e3 / INNER


def note(cp):
    name = cp.cuda.runtime.getDeviceProperties(0)["name"]
    if isinstance(name, bytes):
        name = name.decode()
    return f"CuPy {cp.__version__} on {name}"


def cuda_copy(cp, n, repeats):
    src = cp.full(n, 1.5, dtype=cp.float32)
    dst = cp.zeros_like(src)
    cp.copyto(dst, src)
    samples = [timed(cp, lambda: cp.copyto(dst, src)) for _ in range(repeats)]
    assert float(dst.min()) == 1.5 and float(dst.max()) == 1.5, "the copy did not copy"
    return 8 * n / statistics.median(samples) / 1e9


def cuda_saxpy(cp, n, repeats):
    saxpy = cp.ElementwiseKernel("float32 a, float32 x", "float32 y", "y = a * x + y", "saxpy")
    x = cp.full(n, 2.0, dtype=cp.float32)
    y = cp.full(n, 1.0, dtype=cp.float32)
    a = cp.float32(0.5)
    saxpy(a, x, y)
    runs = 1
    samples = []
    for _ in range(repeats):
        samples.append(timed(cp, lambda: saxpy(a, x, y)))
        runs += INNER
    want = 1.0 + runs
    assert float(y.min()) == want and float(y.max()) == want, f"y is not {want}"
    return 12 * n / statistics.median(samples) / 1e9


def cuda_sum(cp, n, repeats):
    total = cp.ReductionKernel("float32 x", "float32 y", "x", "a + b", "y = a", "0", "braid_sum")
    x = cp.ones(n, dtype=cp.float32)
    assert abs(float(total(x)) - n) <= 1e-5 * n, "the sum is wrong"
    samples = [timed(cp, lambda: total(x)) for _ in range(repeats)]
    return 4 * n / statistics.median(samples) / 1e9


def cuda_sgemm(cp, n, repeats):
    rng = cp.random.default_rng(1)
    a = rng.random((n, n), dtype=cp.float32) - 0.5
    b = rng.random((n, n), dtype=cp.float32) - 0.5
    c = cp.empty((n, n), dtype=cp.float32)
    cp.matmul(a, b, out=c)
    samples = []
    for _ in range(max(repeats, 3)):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        cp.matmul(a, b, out=c)
        end.record()
        end.synchronize()
        samples.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    want = float(cp.dot(a[0].astype(cp.float64), b[:, 0].astype(cp.float64)))
    assert abs(float(c[0, 0]) - want) < 1e-3 * n ** 0.5, "C[0][0] is wrong"
    return 2 * n**3 / statistics.median(samples) / 1e12


def cuda_launch(cp, n, repeats):
    empty = cp.RawKernel(r'extern "C" __global__ void braid_empty() {}', "braid_empty")
    empty((1,), (32,), ())
    cp.cuda.Device().synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            empty((1,), (32,), ())
        cp.cuda.Device().synchronize()
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples) * 1e6


def opencl_context():
    import pyopencl as cl

    devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    if not devices:
        raise RuntimeError("no OpenCL device")
    devices.sort(key=lambda d: 0 if d.type & cl.device_type.GPU else 1)
    context = cl.Context([devices[0]])
    return cl, context, cl.CommandQueue(context)


def opencl_saxpy(n, repeats):
    import numpy as np
    import pyopencl.array as cla
    from pyopencl.elementwise import ElementwiseKernel

    cl, context, queue = opencl_context()
    saxpy = ElementwiseKernel(context, "float a, const float *x, float *y",
                              "y[i] = a * x[i] + y[i]", "saxpy")
    x = cla.to_device(queue, np.full(n, 2.0, dtype=np.float32))
    y = cla.to_device(queue, np.full(n, 1.0, dtype=np.float32))
    a = np.float32(0.5)
    saxpy(a, x, y)
    queue.finish()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        saxpy(a, x, y)
        queue.finish()
        samples.append(time.perf_counter() - start)
    want = 2.0 + repeats
    assert (y.get() == want).all(), f"y is not {want}"
    return 12 * n / statistics.median(samples) / 1e9, queue.device.name.strip()


def opencl_sum(n, repeats):
    import numpy as np
    import pyopencl.array as cla
    from pyopencl.reduction import ReductionKernel

    cl, context, queue = opencl_context()
    total = ReductionKernel(context, np.float32, neutral="0", reduce_expr="a + b",
                            map_expr="x[i]", arguments="const float *x")
    x = cla.to_device(queue, np.ones(n, dtype=np.float32))
    assert abs(float(total(x).get()) - n) <= 1e-5 * n, "the sum is wrong"
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        got = float(total(x).get())
        samples.append(time.perf_counter() - start)
        assert abs(got - n) <= 1e-5 * n, "the sum is wrong"
    return 4 * n / statistics.median(samples) / 1e9, queue.device.name.strip()


CUDA = {
    "cuda_copy": ("GB/s", cuda_copy),
    "cuda_saxpy": ("GB/s", cuda_saxpy),
    "cuda_sum": ("GB/s", cuda_sum),
    "cuda_sgemm": ("TFLOP/s", cuda_sgemm),
    "cuda_launch": ("us", cuda_launch),
}
OPENCL = {"opencl_saxpy": opencl_saxpy, "opencl_sum": opencl_sum}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted([*CUDA, *OPENCL]))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.case in CUDA:
        cp = cupy_or_none()
        if cp is None:
            return missing("cupy")
        unit, measure = CUDA[args.case]
        value = measure(cp, args.iterations, args.repeats)
        answer = {"unit": unit, "value": value, "note": note(cp)}
    else:
        try:
            import numpy  # noqa: F401
        except ImportError:
            return missing("numpy")
        try:
            import pyopencl  # noqa: F401
        except ImportError:
            return missing("pyopencl")
        value, device = OPENCL[args.case](args.iterations, args.repeats)
        answer = {"unit": "GB/s", "value": value, "note": f"PyOpenCL on {device}"}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
