// Model glue: the small kernels between a decoder layer's big ops, f32 arithmetic. resid_norm and
// gather take one block of BLOCK threads per row, gated one thread per element. The residual stream is f32; matrix-product inputs and outputs are f16.
//
//  resid_norm: x[row] = x[row] * scale + post_norm(r[row])  (r and the post-norm optional), then
//              out[row] = RMSNorm(x[row]) * w  as f16 (out optional: the last residual add).
//  gated:      out = act(gate) * up, rows of `cols` from two f16 tensors (act = silu or gelu_tanh).
//  gather:     out[i] = x[rows[i]] (f16 rows of `cols`), the rows whose logits are wanted.
// resid_norm and gated also quantize their f16 output to 8 bits (rf_q8_put) when xq is not null: the
// input of the next gemv_q8, without a launch of its own (rows a multiple of 32 elements).

template <int BLOCK>
RF_DEVICE float glue_rms_scale(float sumsq, int n, float eps, float* scratch) {
    const float t = rf_block_sum<BLOCK>(sumsq, scratch);
    return rsqrtf(t / (float)n + eps);
}

// Rows of at most GLUE_EPT * BLOCK elements (every model row this runs: 4096 on 1024 threads, 576 on 256):
// a thread's elements stay in registers from the first load to the last store, and every load (x, r,
// both weights) is issued at the start. The arithmetic, and so every result, is the loop form's below;
// what goes is re-reading x from memory after the reduction and the weights' loads after it (a decode
// step's norm is one block, a chain of dependent latencies).
#define GLUE_EPT 4
template <int BLOCK>
RF_DEVICE void glue_resid_norm_regs(float* RF_RESTRICT x, const rf_half* RF_RESTRICT r, const float* RF_RESTRICT post_w,
                                    const float* RF_RESTRICT w, rf_half* RF_RESTRICT out, signed char* RF_RESTRICT xq,
                                    float2* RF_RESTRICT xs, int d, float eps, float scale, float* scratch) {
    const long long row = blockIdx.x;
    float* xr = x + row * d;
    float xv[GLUE_EPT], rv[GLUE_EPT], pv[GLUE_EPT], wv[GLUE_EPT];
#pragma unroll
    for (int k = 0; k < GLUE_EPT; ++k) {
        const int i = threadIdx.x + k * BLOCK;
        const bool ok = i < d;
        xv[k] = ok ? xr[i] : 0.0f;
        rv[k] = ok && r != nullptr ? rf_to_f32(r[row * d + i]) : 0.0f;
        pv[k] = ok && post_w != nullptr ? post_w[i] : 0.0f;
        wv[k] = ok && out != nullptr ? w[i] : 0.0f;
    }
    float post = 1.0f;
    if (r != nullptr && post_w != nullptr) {
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < GLUE_EPT; ++k) acc += rv[k] * rv[k];
        post = glue_rms_scale<BLOCK>(acc, d, eps, scratch);
    }
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < GLUE_EPT; ++k) {
        const int i = threadIdx.x + k * BLOCK;
        if (i < d) {
            float v = xv[k] * scale;
            if (r != nullptr) {
                float a = rv[k];
                if (post_w != nullptr) a = a * post * pv[k];
                v += a;
            }
            xr[i] = v;
            xv[k] = v;
            acc += v * v;
        }
    }
    if (out == nullptr) return;
    const float inv = glue_rms_scale<BLOCK>(acc, d, eps, scratch);
#pragma unroll
    for (int k = 0; k < GLUE_EPT; ++k) {
        if (k * BLOCK < d) {  // the same for every thread: each group's quantization has every lane
            const int i = threadIdx.x + k * BLOCK;
            float h = 0.0f;
            if (i < d) {
                const rf_half o = rf_from_f32<rf_half>(xv[k] * inv * wv[k]);
                out[row * d + i] = o;
                h = rf_to_f32(o);
            }
            if (xq != nullptr) rf_q8_put(h, i < d, row * d + i, xq, xs);
        }
    }
}

template <int BLOCK>
RF_DEVICE void glue_resid_norm(float* RF_RESTRICT x, const rf_half* RF_RESTRICT r, const float* RF_RESTRICT post_w,
                               const float* RF_RESTRICT w, rf_half* RF_RESTRICT out, signed char* RF_RESTRICT xq,
                               float2* RF_RESTRICT xs, int d, float eps, float scale) {
    __shared__ float scratch[BLOCK / RF_WAVE];
    if (d <= GLUE_EPT * BLOCK) {
        glue_resid_norm_regs<BLOCK>(x, r, post_w, w, out, xq, xs, d, eps, scale, scratch);
        return;
    }
    const long long row = blockIdx.x;
    float* xr = x + row * d;
    float post = 1.0f;
    if (r != nullptr && post_w != nullptr) {
        float acc = 0.0f;
        for (int i = threadIdx.x; i < d; i += BLOCK) {
            const float v = rf_to_f32(r[row * d + i]);
            acc += v * v;
        }
        post = glue_rms_scale<BLOCK>(acc, d, eps, scratch);
    }
    float acc = 0.0f;
    for (int i = threadIdx.x; i < d; i += BLOCK) {
        float v = xr[i] * scale;
        if (r != nullptr) {
            float a = rf_to_f32(r[row * d + i]);
            if (post_w != nullptr) a = a * post * post_w[i];
            v += a;
        }
        xr[i] = v;
        acc += v * v;
    }
    if (out == nullptr) return;
    const float inv = glue_rms_scale<BLOCK>(acc, d, eps, scratch);
    if (xq == nullptr) {
        for (int i = threadIdx.x; i < d; i += BLOCK) out[row * d + i] = rf_from_f32<rf_half>(xr[i] * inv * w[i]);
        return;
    }
    for (int i0 = 0; i0 < d; i0 += BLOCK) {  // every lane takes part in each group's quantization
        const int i = i0 + threadIdx.x;
        float h = 0.0f;
        if (i < d) {
            const rf_half o = rf_from_f32<rf_half>(xr[i] * inv * w[i]);
            out[row * d + i] = o;
            h = rf_to_f32(o);
        }
        rf_q8_put(h, i < d, row * d + i, xq, xs);
    }
}

RF_DEVICE float glue_silu(float g) { return g / (1.0f + __expf(-g)); }
RF_DEVICE float glue_gelu_tanh(float g) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
}

// One thread per element: blocks of BLOCK consecutive elements of a row (grid.x), rows (grid.y), so a
// single row (a decode step) still spreads over the GPU.
template <int BLOCK, int GELU>
RF_DEVICE void glue_gated(const rf_half* RF_RESTRICT gate, const rf_half* RF_RESTRICT up, rf_half* RF_RESTRICT out,
                          signed char* RF_RESTRICT xq, float2* RF_RESTRICT xs, int cols) {
    const long long row = blockIdx.y;
    const int i = blockIdx.x * BLOCK + threadIdx.x;
    float h = 0.0f;
    if (i < cols) {
        const float g = rf_to_f32(gate[row * cols + i]);
        const float a = GELU ? glue_gelu_tanh(g) : glue_silu(g);
        const rf_half o = rf_from_f32<rf_half>(a * rf_to_f32(up[row * cols + i]));
        out[row * cols + i] = o;
        h = rf_to_f32(o);
    }
    if (xq != nullptr) rf_q8_put(h, i < cols, row * cols + i, xq, xs);
}

template <int BLOCK>
RF_DEVICE void glue_gather(const rf_half* RF_RESTRICT x, const int* RF_RESTRICT rows, rf_half* RF_RESTRICT out, int cols) {
    const long long i = blockIdx.x;
    const long long src = rows[i];
    for (int c = threadIdx.x; c < cols; c += BLOCK) out[i * cols + c] = x[src * cols + c];
}
