// Row softmax and scale+mask over x [rows][cols], one block per row, f32 arithmetic.
//   y = x * scale + mask                      (kind scale_mask)
//   y = softmax(x * scale + mask) along cols  (kind softmax)
// MASK: 0 none; 1 causal: rows are [batch][q_len], row r may see cols c <= (r % q_len) + cols - q_len;
//       2 additive: mask [q_len][cols] f32 added to row r % q_len (broadcast over the batch).
// Fully masked rows give 0 from softmax (not NaN).

template <int MASK>
RF_DEVICE float sm_masked(float v, int r, int c, int cols, int q_len, const float* RF_RESTRICT mask) {
    if (MASK == 1) return c <= (r % q_len) + cols - q_len ? v : RF_NEG_INF;
    if (MASK == 2) return v + mask[(long long)(r % q_len) * cols + c];
    return v;
}

template <typename T, int MASK, bool SOFTMAX, int BLOCK>
RF_DEVICE void softmax_rows(const T* RF_RESTRICT x, T* RF_RESTRICT y, const float* RF_RESTRICT mask, int cols, int q_len, float scale) {
    __shared__ float scratch[BLOCK / RF_WAVE];
    const int r = blockIdx.x;
    const T* xr = x + (long long)r * cols;
    T* yr = y + (long long)r * cols;
    if (!SOFTMAX) {
        for (int c = threadIdx.x; c < cols; c += BLOCK) yr[c] = rf_from_f32<T>(sm_masked<MASK>(rf_to_f32(xr[c]) * scale, r, c, cols, q_len, mask));
        return;
    }
    float m = RF_NEG_INF;
    for (int c = threadIdx.x; c < cols; c += BLOCK) m = fmaxf(m, sm_masked<MASK>(rf_to_f32(xr[c]) * scale, r, c, cols, q_len, mask));
    m = rf_block_max<BLOCK>(m, scratch);
    const float mu = m == RF_NEG_INF ? 0.0f : m;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += BLOCK) s += expf(sm_masked<MASK>(rf_to_f32(xr[c]) * scale, r, c, cols, q_len, mask) - mu);
    s = rf_block_sum<BLOCK>(s, scratch);
    const float inv = s > 0.0f ? 1.0f / s : 0.0f;
    for (int c = threadIdx.x; c < cols; c += BLOCK)
        yr[c] = rf_from_f32<T>(expf(sm_masked<MASK>(rf_to_f32(xr[c]) * scale, r, c, cols, q_len, mask) - mu) * inv);
}
