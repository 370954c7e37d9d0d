// The book's first PyCUDA kernel: one thread per element of a 4 x 4 matrix, launched as a
// single 4 x 4 block, doubles its element.
__global__ void double_matrix(float *a)
{
    int idx = threadIdx.x + threadIdx.y * 4;
    a[idx] *= 2;
}
