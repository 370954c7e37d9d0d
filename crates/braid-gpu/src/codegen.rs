//! The source braid generates for element-wise and reduction kernels, in CUDA C and in
//! OpenCL C, from PyCUDA-style argument lists and expressions.

use crate::error::{Error, Result};
use crate::signature::{self, Param};

/// Which C dialect to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Cuda,
    OpenCl,
}

impl Dialect {
    fn param(self, p: &Param) -> String {
        match self {
            Dialect::Cuda => p.cuda(),
            Dialect::OpenCl => p.opencl(),
        }
    }

    fn params(self, params: &[Param]) -> String {
        params
            .iter()
            .map(|p| self.param(p))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads and checks an argument list; `reserved` names may not be used by it.
fn arguments(arguments: &str, reserved: &[&str]) -> Result<Vec<Param>> {
    let params = signature::parse_params(arguments)
        .map_err(|why| Error::Invalid(format!("argument list `{arguments}`: {why}")))?;
    if !params.iter().any(|p| p.pointer.is_some()) {
        return Err(Error::Invalid(format!(
            "argument list `{arguments}` has no array (pointer) argument to size the work by"
        )));
    }
    for p in &params {
        if reserved.contains(&p.name.as_str()) {
            return Err(Error::Invalid(format!(
                "argument `{}` would hide braid's own `{}`; rename it",
                p.name, p.name
            )));
        }
        if let crate::scalar::CType::Other(t) = &p.ty {
            return Err(Error::Invalid(format!(
                "argument `{}` has type `{t}`; element-wise and reduction kernels take float, double, int, unsigned int, long long and unsigned long long",
                p.name
            )));
        }
    }
    let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Invalid(format!(
            "argument list `{arguments}` names an argument twice"
        )));
    }
    Ok(params)
}

fn check_name(name: &str) -> Result<()> {
    if signature::is_identifier(name) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "kernel name `{name}` is not a C identifier"
        )))
    }
}

fn check_text(what: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::Invalid(format!("the {what} is empty")));
    }
    if text.contains('\0') {
        return Err(Error::Invalid(format!("the {what} contains a NUL byte")));
    }
    Ok(())
}

/// `#pragma` that OpenCL C needs before `double` can be used.
fn fp64_pragma(dialect: Dialect, texts: &[&str]) -> &'static str {
    if dialect == Dialect::OpenCl && texts.iter().any(|t| t.contains("double")) {
        "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
    } else {
        ""
    }
}

/// The suffix of the 32-bit variant of a generated element-wise kernel.
pub(crate) const INT32_SUFFIX: &str = "_int32";

/// An element-wise kernel: `operation` runs once for every index `i` in `0..n`, `n` being
/// the length of the array arguments. Returns the source and the user's parameters.
///
/// The source holds two kernels: `{name}(args..., long long n)`, a grid-stride loop that
/// works for any length, and `{name}_int32(args..., int n)`, one element per thread with
/// `int` indices, which the launch picks whenever `n` fits an `int` and the grid covers it
/// (64-bit index arithmetic costs a streaming kernel several percent).
pub(crate) fn elementwise(
    dialect: Dialect,
    arguments_list: &str,
    operation: &str,
    name: &str,
    preamble: &str,
) -> Result<(String, Vec<Param>)> {
    check_name(name)?;
    check_text("operation", operation)?;
    if preamble.contains('\0') {
        return Err(Error::Invalid("the preamble contains a NUL byte".into()));
    }
    let params = arguments(arguments_list, &["i", "n"])?;
    let list = dialect.params(&params);
    let int32 = INT32_SUFFIX;
    // The unsigned id cannot overflow: the grid has at most n + 255 < 2^32 threads.
    let source = match dialect {
        Dialect::Cuda => format!(
            "{preamble}
__global__ void {name}({list}, long long n)
{{
    {}
    {{
        {operation};
    }}
}}

__global__ void {name}{int32}({list}, int n)
{{
    const unsigned int braid_id = blockIdx.x * blockDim.x + threadIdx.x;
    if (braid_id < (unsigned int)n)
    {{
        const int i = (int)braid_id;
        {operation};
    }}
}}
",
            crate::cuda::CUDA_LOOP
        ),
        Dialect::OpenCl => format!(
            "{}{preamble}
__kernel void {name}({list}, long n)
{{
    for (long i = get_global_id(0); i < n; i += get_global_size(0))
    {{
        {operation};
    }}
}}

__kernel void {name}{int32}({list}, int n)
{{
    const size_t braid_id = get_global_id(0);
    if (braid_id < (size_t)n)
    {{
        const int i = (int)braid_id;
        {operation};
    }}
}}
",
            fp64_pragma(dialect, &[arguments_list, operation, preamble])
        ),
    };
    Ok((source, params))
}

/// Which indices of `0..n` each thread of a reduction's first stage folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// A grid-wide stride: each load of a warp is one coalesced transaction (GPUs).
    GridStride,
    /// Each work-group a contiguous chunk, strided by the work-group: as coalesced on a
    /// GPU, with one stream per work-group.
    GroupChunks,
    /// Each work-item a contiguous chunk: what a CPU platform (PoCL), which runs a
    /// work-group's items one after another, streams through its cache.
    ItemChunks,
}

/// What a reduction computes.
pub(crate) struct ReductionSpec<'a> {
    /// The C type of the result and of every partial value.
    pub out_type: &'a str,
    /// Threads per block (work-items per work-group); a power of two.
    pub block: u32,
    /// How the first stage shares out the indices.
    pub layout: Layout,
    pub neutral: &'a str,
    pub reduce_expr: &'a str,
    pub map_expr: &'a str,
    pub arguments: &'a str,
    pub name: &'a str,
    pub preamble: &'a str,
}

/// A two-stage reduction: `{name}_stage1(args..., n, partial)` reduces a grid-strided share
/// of `map_expr` over `0..n` per block into `partial[block]`; `{name}_stage2(partial, count,
/// out)`, run as one block, reduces the partials into `out[0]`. Returns the source and the
/// user's parameters.
pub(crate) fn reduction(
    dialect: Dialect,
    spec: &ReductionSpec<'_>,
) -> Result<(String, Vec<Param>)> {
    check_name(spec.name)?;
    for (what, text) in [
        ("neutral value", spec.neutral),
        ("reduce expression", spec.reduce_expr),
        ("map expression", spec.map_expr),
    ] {
        check_text(what, text)?;
    }
    if spec.preamble.contains('\0') {
        return Err(Error::Invalid("the preamble contains a NUL byte".into()));
    }
    if !spec.block.is_power_of_two() {
        return Err(Error::Invalid(format!(
            "reduction block of {} threads is not a power of two",
            spec.block
        )));
    }
    let params = arguments(spec.arguments, &["i"])?;
    let list = dialect.params(&params);
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let names = names.join(", ");
    let ReductionSpec {
        out_type: t,
        block: b,
        neutral,
        reduce_expr,
        map_expr,
        name,
        preamble,
        ..
    } = *spec;
    // Dialect words: qualifiers, ids, barriers.
    let (func, kernel, index, shared, global, block_id, groups, tid, barrier, const_in) =
        match dialect {
            Dialect::Cuda => (
                "__device__ __forceinline__",
                "__global__",
                "long long",
                "__shared__",
                "",
                "(long long)blockIdx.x",
                "(long long)gridDim.x",
                "threadIdx.x",
                "__syncthreads()",
                "const",
            ),
            Dialect::OpenCl => (
                "inline",
                "__kernel",
                "long",
                "__local",
                "__global ",
                "(long)get_group_id(0)",
                "(long)get_num_groups(0)",
                "get_local_id(0)",
                "barrier(CLK_LOCAL_MEM_FENCE)",
                "const",
            ),
        };
    let share = match spec.layout {
        Layout::GridStride => format!(
            "    const {index} braid_stride = {groups} * {b};\n    const {index} braid_stop = braid_n;\n    {index} i = {block_id} * {b} + braid_tid;\n"
        ),
        Layout::GroupChunks => format!(
            "    const {index} braid_chunk = (braid_n + {groups} - 1) / {groups};\n    const {index} braid_begin = {block_id} * braid_chunk;\n    const {index} braid_stop = min(braid_begin + braid_chunk, braid_n);\n    const {index} braid_stride = {b};\n    {index} i = braid_begin + braid_tid;\n"
        ),
        Layout::ItemChunks => format!(
            "    const {index} braid_chunk = (braid_n + {groups} * {b} - 1) / ({groups} * {b});\n    const {index} braid_begin = ({block_id} * {b} + braid_tid) * braid_chunk;\n    const {index} braid_stop = min(braid_begin + braid_chunk, braid_n);\n    const {index} braid_stride = 1;\n    {index} i = braid_begin;\n"
        ),
    };
    let tree = format!(
        "    braid_sdata[braid_tid] = braid_acc;\n    {barrier};\n    for (unsigned int braid_s = {b} / 2; braid_s > 0; braid_s >>= 1) {{\n        if (braid_tid < braid_s) braid_sdata[braid_tid] = braid_reduce(braid_sdata[braid_tid], braid_sdata[braid_tid + braid_s]);\n        {barrier};\n    }}\n"
    );
    let source = format!(
        "{pragma}{preamble}
{func} braid_out_t braid_reduce(braid_out_t a, braid_out_t b) {{ return ({reduce_expr}); }}
{func} braid_out_t braid_map({index} i, {list}) {{ return ({map_expr}); }}

{kernel} void {name}_stage1({list}, {index} braid_n, {global}braid_out_t *braid_partial)
{{
    {shared} braid_out_t braid_sdata[{b}];
    const unsigned int braid_tid = {tid};
{share}    braid_out_t braid_acc = ({neutral});
    for (; i + 3 * braid_stride < braid_stop; i += 4 * braid_stride) {{
        braid_out_t braid_v0 = braid_map(i, {names});
        braid_out_t braid_v1 = braid_map(i + braid_stride, {names});
        braid_out_t braid_v2 = braid_map(i + 2 * braid_stride, {names});
        braid_out_t braid_v3 = braid_map(i + 3 * braid_stride, {names});
        braid_acc = braid_reduce(braid_acc, braid_reduce(braid_reduce(braid_v0, braid_v1), braid_reduce(braid_v2, braid_v3)));
    }}
    for (; i < braid_stop; i += braid_stride) braid_acc = braid_reduce(braid_acc, braid_map(i, {names}));
{tree}    if (braid_tid == 0) braid_partial[{block_id}] = braid_sdata[0];
}}

{kernel} void {name}_stage2({global}{const_in} braid_out_t *braid_in, {index} braid_n, {global}braid_out_t *braid_out)
{{
    {shared} braid_out_t braid_sdata[{b}];
    const unsigned int braid_tid = {tid};
    braid_out_t braid_acc = ({neutral});
    for ({index} i = braid_tid; i < braid_n; i += {b}) braid_acc = braid_reduce(braid_acc, braid_in[i]);
{tree}    if (braid_tid == 0) braid_out[0] = braid_sdata[0];
}}
",
        pragma = fp64_pragma(dialect, &[t, spec.arguments, preamble, map_expr]),
    );
    // The result type is spelled out (not a typedef) so that braid's argument checks can
    // read the stages' signatures.
    Ok((source.replace("braid_out_t", t), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_sources_in_both_dialects() {
        let (cuda, params) = elementwise(
            Dialect::Cuda,
            "float a, float *x, float *y",
            "y[i] = a * x[i] + y[i]",
            "saxpy",
            "",
        )
        .unwrap();
        assert_eq!(params.len(), 3);
        assert!(cuda.contains("__global__ void saxpy(float a, float *x, float *y, long long n)"));
        assert!(cuda.contains("__global__ void saxpy_int32(float a, float *x, float *y, int n)"));
        let (cl, _) = elementwise(
            Dialect::OpenCl,
            "double a, double *x",
            "x[i] *= a",
            "scale",
            "",
        )
        .unwrap();
        assert!(cl.starts_with("#pragma OPENCL EXTENSION cl_khr_fp64"));
        assert!(cl.contains("__kernel void scale(double a, __global double *x, long n)"));
    }

    #[test]
    fn bad_element_wise_input_is_refused() {
        let e = |args: &str, op: &str, name: &str| {
            elementwise(Dialect::Cuda, args, op, name, "")
                .unwrap_err()
                .to_string()
        };
        assert!(e("float a", "a", "k").contains("no array"));
        assert!(e("float *n", "n[i] = 0", "k").contains("hide braid's own `n`"));
        assert!(e("float *x, int *x", "x[i] = 0", "k").contains("twice"));
        assert!(e("float *x", "", "k").contains("operation is empty"));
        assert!(e("float *x", "x[i] = 0", "my-kernel").contains("not a C identifier"));
        assert!(e("float2 *x", "x[i] = 0", "k").contains("has type `float2`"));
    }

    #[test]
    fn reduction_source_has_two_stages() {
        let spec = ReductionSpec {
            out_type: "float",
            block: 256,
            layout: Layout::GridStride,
            neutral: "0",
            reduce_expr: "a+b",
            map_expr: "x[i]*y[i]",
            arguments: "const float *x, const float *y",
            name: "dot",
            preamble: "",
        };
        let (cuda, params) = reduction(Dialect::Cuda, &spec).unwrap();
        assert_eq!(params.len(), 2);
        assert!(cuda.contains("__global__ void dot_stage1(const float *x, const float *y, long long braid_n, float *braid_partial)"));
        assert!(cuda.contains("__global__ void dot_stage2("));
        let (cl, _) = reduction(Dialect::OpenCl, &spec).unwrap();
        assert!(cl.contains("__kernel void dot_stage1(__global const float *x, __global const float *y, long braid_n, __global float *braid_partial)"));
        let bad = ReductionSpec { block: 100, ..spec };
        assert!(reduction(Dialect::Cuda, &bad).is_err());
    }
}
