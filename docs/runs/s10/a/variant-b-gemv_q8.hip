// gemv_q8: y = W x with the activations x quantized to 8-bit integers and integer dot products
// (dp4a on NVIDIA, sdot4 / sudot4 on AMD), W in its GGUF block format read straight from global
// memory. Two kernels:
//
//  * rf_q8_act (family q8_act): x (batch x cols, f32/f16/bf16) -> per 16 elements d = amax / 127 and
//    q = rint(x * (127 / amax)) as int8 (xq, batch x cols) and the pair (d, d * sum q) (xs, float2,
//    batch x cols/16), by rf_q8_put (prelude_common.h), which the glue kernels call too. The CPU
//    reference (ops::quantized::gemv_q8) does the same f32 operations, so xq and xs are bit-exact.
//  * rf_gemv_q8 (family gemv_q8): every block format is cut into lane units (rf_w8<F>, in
//    quant_w8.h, shared with gemv's mma tile): a unit is NS segments of 16 consecutive elements
//    whose weights are a * code + b with one (a, b) per segment and integer codes that fit a signed
//    byte. A segment against x costs four dp4a:
//    sum_i W_i x_i = a * d * sum_i code_i q_i + b * (d * sum_i q_i) = a * d * sumi + b * xs.y.
//    The NT = NW * wave threads of a block take the units of a row in turn (consecutive threads,
//    consecutive units: the weight loads of a wave cover contiguous bytes), R rows per block and
//    B right-hand sides per thread, and reduce through shuffles and shared memory.

template <typename T>
RF_DEVICE void rf_q8_act(const T* RF_RESTRICT x, signed char* RF_RESTRICT xq, float2* RF_RESTRICT xs, int cols) {
    const int row = blockIdx.y;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const long long at = (long long)row * cols + i;
    rf_q8_put(i < cols ? rf_to_f32(x[at]) : 0.0f, i < cols, at, xq, xs);
}

template <typename F, typename T, int B, int R, int NW>
RF_DEVICE void rf_gemv_q8(const uint8_t* RF_RESTRICT w, const int8_t* RF_RESTRICT xq, const float2* RF_RESTRICT xs,
                          T* RF_RESTRICT y, int rows, int cols, int batch) {
    using W = rf_w8<F>;
    constexpr int NT = NW * RF_WAVE;
    constexpr int NS = W::NS;
    __shared__ float red[NW][R * B];
    const int nb = cols / F::QK;
    const int nu = nb * W::UPB;
    const long long row_bytes = (long long)nb * F::BYTES;
    const uint8_t* end = w + (long long)rows * row_bytes;
    const int row0 = blockIdx.x * R;
    const uint8_t* wr[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wr[r] = w + (long long)min(row0 + r, rows - 1) * row_bytes;
    const int8_t* xb[B];
    const float2* sb[B];
#pragma unroll
    for (int b = 0; b < B; ++b) {
        const long long xr = (long long)min(b, batch - 1) * cols;
        xb[b] = xq + xr;
        sb[b] = xs + (xr >> 4);
    }
    float acc[R][B];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int b = 0; b < B; ++b) acc[r][b] = 0.0f;

    // register double buffering: the units of iteration g + NT are fetched (and decoded) before
    // the dot products of iteration g, so a thread keeps its next loads in flight while it computes
    uint32_t c[R][NS][4];
    float a[R][NS], bo[R][NS];
    int g = threadIdx.x;
    if (g < nu) {
#pragma unroll
        for (int r = 0; r < R; ++r) W::template unit<4>(wr[r] + (long long)(g / W::UPB) * F::BYTES, g % W::UPB, 0, c[r], a[r], bo[r], end);
    }
    for (; g < nu; g += NT) {
        const int blk = g / W::UPB, u = g % W::UPB;
        const int gn = g + NT;
        uint32_t cn[R][NS][4];
        float an[R][NS], bn[R][NS];
        if (gn < nu) {
#pragma unroll
            for (int r = 0; r < R; ++r) W::template unit<4>(wr[r] + (long long)(gn / W::UPB) * F::BYTES, gn % W::UPB, 0, cn[r], an[r], bn[r], end);
        }
#pragma unroll
        for (int s = 0; s < NS; ++s) {
            const int el = blk * F::QK + W::elem(u, s);
#pragma unroll
            for (int b = 0; b < B; ++b) {
                const int4 xv = *(const int4*)(xb[b] + el);
                const float2 xd = sb[b][el >> 4];
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    int sumi = rf_dp4a((int)c[r][s][0], xv.x, 0);
                    sumi = rf_dp4a((int)c[r][s][1], xv.y, sumi);
                    sumi = rf_dp4a((int)c[r][s][2], xv.z, sumi);
                    sumi = rf_dp4a((int)c[r][s][3], xv.w, sumi);
                    acc[r][b] = fmaf(a[r][s] * xd.x, (float)sumi, fmaf(bo[r][s], xd.y, acc[r][b]));
                }
            }
        }
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int s = 0; s < NS; ++s) {
                a[r][s] = an[r][s];
                bo[r][s] = bn[r][s];
#pragma unroll
                for (int i = 0; i < 4; ++i) c[r][s][i] = cn[r][s][i];
            }
    }
    const int lane = threadIdx.x % RF_WAVE, wid = threadIdx.x / RF_WAVE;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int b = 0; b < B; ++b) {
            const float v = rf_wave_sum(acc[r][b]);
            if (lane == 0) red[wid][r * B + b] = v;
        }
    __syncthreads();
    for (int t = threadIdx.x; t < R * B; t += NT) {
        const int r = t / B, b = t % B;
        float v = 0.0f;
#pragma unroll
        for (int k = 0; k < NW; ++k) v += red[k][t];
        if (row0 + r < rows && b < batch) y[(long long)b * rows + row0 + r] = rf_from_f32<T>(v);
    }
}
