// Merge of flash-decoding parts: out[row][d] = sum_p 2^(m_p - M) o_p[d] / sum_p 2^(m_p - M) l_p.
// o_part [rows][nparts][head_dim] f32 (unnormalized), ml_part [rows][nparts][2] (max in log2 units, sum).
// One block of MG_THREADS per row (head_dim <= MG_MAXHD = MG_THREADS): the parts are dealt to PG groups of head_dim/4 threads (float4 each),
// whose sums meet in shared memory. A row with no visible key at all gets zeros.
#define MG_THREADS 256
#define MG_MAXHD 256

template <typename T>
RF_DEVICE void attn_merge(const float* RF_RESTRICT o_part, const float* RF_RESTRICT ml_part, T* RF_RESTRICT out, int nparts, int head_dim,
                          signed char* RF_RESTRICT xq, float2* RF_RESTRICT xs) {
    __shared__ float s_acc[MG_THREADS * 4];
    __shared__ float s_l[MG_THREADS];
    __shared__ float s_red[MG_THREADS / RF_WAVE];
    const long long row = blockIdx.x;
    const float* ml = ml_part + row * nparts * 2;
    float mx = RF_NEG_INF;
    for (int p = threadIdx.x; p < nparts; p += MG_THREADS) mx = fmaxf(mx, ml[2 * p]);
    const float M = rf_block_max<MG_THREADS>(mx, s_red);
    const float mu = M == RF_NEG_INF ? 0.0f : M;
    const int nd = head_dim / 4;      // threads per part
    const int pg = MG_THREADS / nd;   // parts in flight
    const int g = threadIdx.x / nd, d4 = threadIdx.x % nd;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float L = 0.0f;
    if (g < pg) {
        // unconditional loads, unrolled: several parts' loads in flight per thread (a part with no
        // visible key has m = -inf, c = 0, and o = l = 0 written by its block)
#pragma unroll 4
        for (int p = g; p < nparts; p += pg) {
            const float c = exp2f(ml[2 * p] - mu);
            const float4 v = ((const float4*)(o_part + (row * nparts + p) * head_dim))[d4];
            acc.x += c * v.x; acc.y += c * v.y; acc.z += c * v.z; acc.w += c * v.w;
            L += c * ml[2 * p + 1];
        }
        *(float4*)&s_acc[g * head_dim + 4 * d4] = acc;
        if (d4 == 0) s_l[g] = L;
    }
    __syncthreads();
    // one element a thread (head_dim <= MG_THREADS); with xq, every thread takes part in rf_q8_put's
    // shuffles (head_dim % 16 == 0: a 16-lane group is valid together)
    const int d = threadIdx.x;
    const bool valid = d < head_dim;
    if (!valid && xq == nullptr) return;
    float a = 0.0f, lt = 0.0f;
    for (int i = 0; i < pg; i++) {
        a += valid ? s_acc[i * head_dim + d] : 0.0f;
        lt += s_l[i];
    }
    const T v = rf_from_f32<T>(lt > 0.0f ? a / lt : 0.0f);
    if (valid) out[row * head_dim + d] = v;
    if (xq != nullptr) rf_q8_put(rf_to_f32(v), valid, row * head_dim + d, xq, xs);
}
