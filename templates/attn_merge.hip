// Merge of flash-decoding parts: out[row][d] = sum_p 2^(m_p - M) o_p[d] / sum_p 2^(m_p - M) l_p.
// o_part [rows][nparts][head_dim] f32 (unnormalized), ml_part [rows][nparts][2] (max in log2 units, sum).
// Grid: one block of MG_THREADS per (row, MG_COLS columns): blockIdx.x the row, blockIdx.y the column
// chunk (head_dim % 16 == 0; a last chunk may be partial). A part's MG_COLS columns are MG_COLS / 4
// threads with a float4 each, so MG_PG = MG_THREADS * 4 / MG_COLS parts are read at once per block, and
// every thread has up to four in flight. A row's parts live in L2; at batch 1 there are few rows and
// many parts (a long context split over the device), and the reading is latency-bound: one block per
// row (the first form) left a 4-row, 342-part merge at 37 us, spread over the row's columns it is a few.
// The groups' sums meet in shared memory in two steps. A row with no visible key at all gets zeros.
#define MG_THREADS 256
#define MG_COLS 16

template <typename T>
RF_DEVICE void attn_merge(const float* RF_RESTRICT o_part, const float* RF_RESTRICT ml_part, T* RF_RESTRICT out, int nparts, int head_dim,
                          signed char* RF_RESTRICT xq, float2* RF_RESTRICT xs) {
    constexpr int ND = MG_COLS / 4;           // threads per part
    constexpr int PG = MG_THREADS / ND;       // parts read at once
    constexpr int QG = MG_THREADS / MG_COLS;  // first reduction step: groups of PG / QG part groups
    static_assert(MG_COLS % 16 == 0 && PG % QG == 0, "merge shape");
    __shared__ float s_acc[PG * MG_COLS];
    __shared__ float s_l[PG];
    __shared__ float s_acc2[QG * MG_COLS];
    __shared__ float s_l2[QG];
    __shared__ float s_red[MG_THREADS / RF_WAVE];
    const long long row = blockIdx.x;
    const int c0 = blockIdx.y * MG_COLS;
    const float* ml = ml_part + row * nparts * 2;
    float mx = RF_NEG_INF;
    for (int p = threadIdx.x; p < nparts; p += MG_THREADS) mx = fmaxf(mx, ml[2 * p]);
    const float M = rf_block_max<MG_THREADS>(mx, s_red);
    const float mu = M == RF_NEG_INF ? 0.0f : M;
    const int g = threadIdx.x / ND, d4 = threadIdx.x % ND;
    const bool col_ok = c0 + 4 * d4 < head_dim;  // head_dim % 4 == 0: a float4 is whole or out
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float L = 0.0f;
    // unconditional loads, unrolled: several parts' loads in flight per thread (a part with no visible
    // key has m = -inf, c = 0, and o = l = 0 written by its block)
    if (col_ok) {  // always for d4 == 0, the thread whose L is kept
        const float4* op = (const float4*)(o_part + row * nparts * head_dim + c0) + d4;
#pragma unroll 4
        for (int p = g; p < nparts; p += PG) {
            const float c = exp2f(ml[2 * p] - mu);
            const float4 v = op[(long long)p * (head_dim / 4)];
            acc.x += c * v.x; acc.y += c * v.y; acc.z += c * v.z; acc.w += c * v.w;
            L += c * ml[2 * p + 1];
        }
    }
    *(float4*)&s_acc[g * MG_COLS + 4 * d4] = acc;
    if (d4 == 0) s_l[g] = L;
    __syncthreads();
    {  // QG x MG_COLS threads: each sums PG / QG part groups of one column
        const int q = threadIdx.x / MG_COLS, d = threadIdx.x % MG_COLS;
        float a = 0.0f, lt = 0.0f;
#pragma unroll
        for (int i = q * (PG / QG); i < (q + 1) * (PG / QG); i++) {
            a += s_acc[i * MG_COLS + d];
            lt += s_l[i];
        }
        s_acc2[q * MG_COLS + d] = a;
        if (d == 0) s_l2[q] = lt;
    }
    __syncthreads();
    // one column a thread of wave 0 (MG_COLS <= wave); with xq every lane of it takes part in
    // rf_q8_put's shuffles (a 16-column group is valid together: head_dim and c0 are multiples of 16)
    if (threadIdx.x >= RF_WAVE) return;
    const int d = threadIdx.x;
    const bool valid = d < MG_COLS && c0 + d < head_dim;
    if (!valid && xq == nullptr) return;
    float a = 0.0f, lt = 0.0f;
#pragma unroll
    for (int q = 0; q < QG; q++) {
        a += valid ? s_acc2[q * MG_COLS + d] : 0.0f;
        lt += s_l2[q];
    }
    const T v = rf_from_f32<T>(lt > 0.0f ? a / lt : 0.0f);
    if (valid) out[row * head_dim + c0 + d] = v;
    if (xq != nullptr) rf_q8_put(rf_to_f32(v), valid, row * head_dim + c0 + d, xq, xs);
}
