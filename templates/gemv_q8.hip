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

// Fused forms (batch 1, f16 y; docs in ops::quantized::gemv_q8). NIN: the input is an RMSNorm whose 1/rms
// was not applied (a producer's OUT 1 below): every block sums the producer's per-16 sums of squares
// (ss_in, cols / 16 of them) and scales its outputs by rsqrt(sum / cols + eps). OUT 1 (resid):
// xres[row] += f16(y[row]) (the residual stream, f32, in place) and the 8-bit copy of xres * nw (the
// next RMSNorm without its 1/rms: the 16 codes of a group do not depend on a common factor, and their
// d takes it in the consumer's NIN), with each group's sum of squares in ss_out. OUT 2 / 3: W is gate (rows 0 .. rows - 1) and up (rows .. 2 rows - 1) stacked;
// y[row] = f16(act(f16(gate)) * f16(up)) (SiLU / GELU-tanh, glue_gated's arithmetic) and its 8-bit
// copy. With OUT, a block makes a whole group of 16 rows, so it can quantize them itself: it is
// S = 16 / R sub-blocks of NW waves (512 threads), each the plain kernel's block on R of the rows.
struct rf_q8_fuse {
    const float* ss_in;
    float eps;
    float* xres;
    const float* nw;
    signed char* oq;
    float2* os;
    float* ss_out;
};

template <typename F, typename T, int B, int R, int NW, int NIN, int OUT>
RF_DEVICE void rf_gemv_q8_f(const uint8_t* RF_RESTRICT w, const int8_t* RF_RESTRICT xq, const float2* RF_RESTRICT xs,
                            T* RF_RESTRICT y, int rows, int cols, int batch, const rf_q8_fuse fz) {
    using W = rf_w8<F>;
    constexpr int NT = NW * RF_WAVE;  // threads of a sub-block
    constexpr int NS = W::NS;
    constexpr bool GLU = OUT >= 2;
    constexpr int S = OUT != 0 ? 16 / R : 1;
    constexpr int RR = GLU ? 2 * R : R;  // matrix rows a sub-block reads
    constexpr int NR = RR * B + (NIN ? 1 : 0);
    static_assert(OUT == 0 || (B == 1 && 16 % R == 0), "fused gemv_q8 outputs: batch 1, rows per sub-block dividing 16");
    __shared__ float red[S][NW][NR];
    const int sub = S > 1 ? (int)threadIdx.x / NT : 0;
    const int tid = S > 1 ? (int)threadIdx.x % NT : (int)threadIdx.x;
    const int nb = cols / F::QK;
    const int nu = nb * W::UPB;
    const long long row_bytes = (long long)nb * F::BYTES;
    const uint8_t* end = w + (long long)(GLU ? 2 * rows : rows) * row_bytes;
    const int row0 = blockIdx.x * R * S + sub * R;
    const uint8_t* wr[RR];
#pragma unroll
    for (int r = 0; r < RR; ++r) {
        const int rr = min(row0 + (r % R), rows - 1) + (r >= R ? rows : 0);
        wr[r] = w + (long long)rr * row_bytes;
    }
    // NIN: 1/rms from the producer's sums, before the main loop (H200: 1-2 % faster end to end than
    // summing them after it, loads issued first by inline PTX, which lost the weights' read-only loads)
    constexpr int BT = S * NT;
    float sc = 1.0f;
    if constexpr (NIN != 0) {
        __shared__ float s_ss[S * NW];
        float t = 0.0f;
        for (int i = threadIdx.x; i < cols / 16; i += BT) t += fz.ss_in[i];
        t = rf_wave_sum(t);
        if (threadIdx.x % RF_WAVE == 0) s_ss[threadIdx.x / RF_WAVE] = t;
        __syncthreads();
        t = 0.0f;
#pragma unroll
        for (int k = 0; k < S * NW; ++k) t += s_ss[k];
        sc = rsqrtf(t / (float)cols + fz.eps);
    }
    // OUT 1: the norm weight of the group's 16 rows, and each row's residual
    float nwv = 0.0f, xrv = 0.0f;
    if constexpr (OUT == 1) {
        if (threadIdx.x < 16) nwv = fz.nw[min((int)(blockIdx.x * 16 + threadIdx.x), rows - 1)];
        if (tid < R) xrv = fz.xres[min(row0 + tid, rows - 1)];
    }
    const int8_t* xb[B];
    const float2* sb[B];
#pragma unroll
    for (int b = 0; b < B; ++b) {
        const long long xr = (long long)min(b, batch - 1) * cols;
        xb[b] = xq + xr;
        sb[b] = xs + (xr >> 4);
    }
    float acc[RR][B];
#pragma unroll
    for (int r = 0; r < RR; ++r)
#pragma unroll
        for (int b = 0; b < B; ++b) acc[r][b] = 0.0f;

    for (int g = tid; g < nu; g += NT) {
        const int blk = g / W::UPB, u = g % W::UPB;
#pragma unroll
        for (int r = 0; r < RR; ++r) {
            uint32_t c[NS][4];
            float a[NS], bo[NS];
            W::template unit<4>(wr[r] + (long long)blk * F::BYTES, u, 0, c, a, bo, end);
#pragma unroll
            for (int s = 0; s < NS; ++s) {
                const int el = blk * F::QK + W::elem(u, s);
#pragma unroll
                for (int b = 0; b < B; ++b) {
                    const int4 xv = *(const int4*)(xb[b] + el);
                    const float2 xd = sb[b][el >> 4];
                    int sumi = rf_dp4a((int)c[s][0], xv.x, 0);
                    sumi = rf_dp4a((int)c[s][1], xv.y, sumi);
                    sumi = rf_dp4a((int)c[s][2], xv.z, sumi);
                    sumi = rf_dp4a((int)c[s][3], xv.w, sumi);
                    acc[r][b] = fmaf(a[s] * xd.x, (float)sumi, fmaf(bo[s], xd.y, acc[r][b]));
                }
            }
        }
    }
    const int lane = tid % RF_WAVE, wid = tid / RF_WAVE;
#pragma unroll
    for (int r = 0; r < RR; ++r)
#pragma unroll
        for (int b = 0; b < B; ++b) {
            const float v = rf_wave_sum(acc[r][b]);
            if (lane == 0) red[sub][wid][r * B + b] = v;
        }
    __syncthreads();
    if constexpr (OUT == 0) {
        for (int t = threadIdx.x; t < R * B; t += NT) {
            const int r = t / B, b = t % B;
            float v = 0.0f;
#pragma unroll
            for (int k = 0; k < NW; ++k) v += red[0][k][t];
            if (row0 + r < rows && b < batch) y[(long long)b * rows + row0 + r] = rf_from_f32<T>(v * sc);
        }
    } else {
        __shared__ float vals[16];
        if (tid < R) {
            const int row = min(row0 + tid, rows - 1);
            float v = 0.0f, u = 0.0f;
#pragma unroll
            for (int k = 0; k < NW; ++k) {
                v += red[sub][k][tid];
                if constexpr (GLU) u += red[sub][k][R + tid];
            }
            float o;
            if constexpr (GLU) {
                const float g = rf_to_f32(rf_from_f32<rf_half>(v * sc));
                const float a = OUT == 3 ? rf_glu_act<2>(g) : rf_glu_act<1>(g);
                const T h = rf_from_f32<T>(a * rf_to_f32(rf_from_f32<rf_half>(u * sc)));
                if (row0 + tid < rows) y[row] = h;
                o = rf_to_f32(h);
            } else {
                o = xrv + rf_to_f32(rf_from_f32<rf_half>(v * sc));
                if (row0 + tid < rows) fz.xres[row] = o;
            }
            vals[sub * R + tid] = o;
        }
        __syncthreads();
        if (threadIdx.x < RF_WAVE) {  // one wave: lanes 0..15 hold the group (16-lane shuffles in rf_q8_put)
            const int i = blockIdx.x * 16 + (int)(threadIdx.x & 15u);
            const bool ok = threadIdx.x < 16 && i < rows;
            const float o = ok ? vals[threadIdx.x] : 0.0f;
            rf_q8_put(OUT == 1 ? o * nwv : o, ok, i, fz.oq, fz.os);
            if constexpr (OUT == 1) {
                float sq = o * o;
#pragma unroll
                for (int m = 8; m > 0; m >>= 1) sq += RF_SHFL_XOR(sq, m);
                if (threadIdx.x == 0 && i < rows) fz.ss_out[i / 16] = sq;
            }
        }
    }
}

template <typename F, typename T, int B, int R, int NW>
RF_DEVICE void rf_gemv_q8(const uint8_t* RF_RESTRICT w, const int8_t* RF_RESTRICT xq, const float2* RF_RESTRICT xs,
                          T* RF_RESTRICT y, int rows, int cols, int batch) {
    const rf_q8_fuse fz{nullptr, 0.0f, nullptr, nullptr, nullptr, nullptr, nullptr};
    rf_gemv_q8_f<F, T, B, R, NW, 0, 0>(w, xq, xs, y, rows, cols, batch, fz);
}
