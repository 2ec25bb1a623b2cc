// Smoke kernels: the smallest kernels that exercise loading, launching, shuffles and shared memory.

// y[i] = a * x[i] + y[i]
template <typename T>
RF_DEVICE void smoke_axpy(int n, float a, const T* RF_RESTRICT x, T* RF_RESTRICT y) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        y[i] = rf_from_f32<T>(a * rf_to_f32(x[i]) + rf_to_f32(y[i]));
}

// out[w] = sum of x[w*RF_WAVE .. w*RF_WAVE + RF_WAVE) (missing tail elements count as 0): one wave each.
template <typename T>
RF_DEVICE void smoke_wave_reduce(int n, const T* RF_RESTRICT x, float* RF_RESTRICT out) {
    const int gid = blockIdx.x * blockDim.x + threadIdx.x;
    const int wave = gid / RF_WAVE;
    float v = gid < n ? rf_to_f32(x[gid]) : 0.0f;
    v = rf_wave_sum(v);
    if (gid % RF_WAVE == 0 && wave * RF_WAVE < n) out[wave] = v;
}

// out[b] = sum of x over the rows [b*row, (b+1)*row), one block per row.
template <typename T, int BLOCK>
RF_DEVICE void smoke_block_reduce(int row, const T* RF_RESTRICT x, float* RF_RESTRICT out) {
    __shared__ float scratch[BLOCK / RF_WAVE];
    const T* r = x + (long long)blockIdx.x * row;
    float v = 0.0f;
    for (int i = threadIdx.x; i < row; i += BLOCK) v += rf_to_f32(r[i]);
    v = rf_block_sum<BLOCK>(v, scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
}
