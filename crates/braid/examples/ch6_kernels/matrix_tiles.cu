// Matrix kernels that use the memory hierarchy: each block stages tiles of its inputs in
// shared memory, so every element of global memory is read once per tile instead of once
// per multiply-add.
//
// The book's MatrixMulKernel computes its row and column from threadIdx alone and runs as
// one block, so it is right only while the whole matrix fits in a block. Here the indices
// include blockIdx, and every load and store is bounds-checked, so any m x k times k x n
// product is right, whatever its sizes.

#define TILE 16

// C (m x n) = A (m x k) B (k x n), row-major; launch with TILE x TILE blocks covering C.
__global__ void matrix_mul(const float *a, const float *b, float *c, int m, int k, int n)
{
    __shared__ float a_tile[TILE][TILE];
    __shared__ float b_tile[TILE][TILE];
    int row = blockIdx.y * TILE + threadIdx.y;
    int col = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;
    for (int t = 0; t < k; t += TILE) {
        int a_col = t + threadIdx.x;
        int b_row = t + threadIdx.y;
        a_tile[threadIdx.y][threadIdx.x] = (row < m && a_col < k) ? a[row * k + a_col] : 0.0f;
        b_tile[threadIdx.y][threadIdx.x] = (b_row < k && col < n) ? b[b_row * n + col] : 0.0f;
        __syncthreads();
        for (int j = 0; j < TILE; ++j)
            acc += a_tile[threadIdx.y][j] * b_tile[j][threadIdx.x];
        __syncthreads();
    }
    if (row < m && col < n)
        c[row * n + col] = acc;
}

// out (cols x rows) = in (rows x cols) transposed, through a tile in dynamic shared memory
// of blockDim.y * (blockDim.x + 1) floats (the extra column keeps the column reads free of
// bank conflicts). Launch with square blocks covering `in`.
__global__ void transpose(const float *in, float *out, int rows, int cols)
{
    extern __shared__ float tile[];
    int width = blockDim.x + 1;
    int r = blockIdx.y * blockDim.y + threadIdx.y;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows && c < cols)
        tile[threadIdx.y * width + threadIdx.x] = in[r * cols + c];
    __syncthreads();
    int out_r = blockIdx.x * blockDim.x + threadIdx.y;
    int out_c = blockIdx.y * blockDim.y + threadIdx.x;
    if (out_r < cols && out_c < rows)
        out[out_r * rows + out_c] = tile[threadIdx.x * width + threadIdx.y];
}
