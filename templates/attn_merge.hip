// Merge of flash-decoding parts: out[row][d] = sum_p 2^(m_p - M) o_p[d] / sum_p 2^(m_p - M) l_p.
// o_part [rows][nparts][head_dim] f32 (unnormalized), ml_part [rows][nparts][2] (max in log2 units, sum).
// One block per row. A row with no visible key at all gets zeros.
template <typename T>
RF_DEVICE void attn_merge(const float* RF_RESTRICT o_part, const float* RF_RESTRICT ml_part, T* RF_RESTRICT out, int nparts, int head_dim) {
    const long long row = blockIdx.x;
    const float* ml = ml_part + row * nparts * 2;
    float M = RF_NEG_INF;
    for (int p = 0; p < nparts; p++) M = fmaxf(M, ml[2 * p]);
    const float mu = M == RF_NEG_INF ? 0.0f : M;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float L = 0.0f, acc = 0.0f;
        for (int p = 0; p < nparts; p++) {
            const float wgt = exp2f(ml[2 * p] - mu);
            if (wgt > 0.0f) {
                L += wgt * ml[2 * p + 1];
                acc += wgt * o_part[(row * nparts + p) * head_dim + d];
            }
        }
        out[row * head_dim + d] = rf_from_f32<T>(L > 0.0f ? acc / L : 0.0f);
    }
}
