// RoPE (rotary position embedding), in place on Q [tokens][n_q_heads][head_dim] and
// K [tokens][n_kv_heads][head_dim], with a per-token position array.
//
// Conventions (n_rot = rotated dims, the first n_rot of each head; the rest are left alone):
//   normal (llama.cpp "normal", GPT-J): pairs (2i, 2i+1) for i < n_rot/2
//   neox   (GPT-NeoX, HF "rotate_half"): pairs (i, i + n_rot/2)
// Pair i turns by pos * base^(-2i/n_rot). Each thread handles 4 pairs (n_rot % 8 == 0).

template <typename T>
struct alignas(4 * sizeof(T)) rf_vec4 { T v[4]; };

// inv_freq(i) = base^(-2i/n_rot), computed as exp2 of a product in f32 (the CPU reference does the same).
RF_DEVICE float rope_inv_freq(int pair, int n_rot, float log2_base) {
    return exp2f(-((float)(2 * pair) / (float)n_rot) * log2_base);
}

// sin and cos of an angle of any size: Cody-Waite reduction to |r| <= pi with a two-part 2*pi (the fma
// keeps x - k * C1 exact), then the hardware approximations (abs error ~5e-7 on [-pi, pi]). The accurate
// sincosf costs a slow path per call and was what kept the fused append below copy speed.
RF_DEVICE void rope_sincos(float x, float* s, float* c) {
    const float k = rintf(x * 0.15915494309189535f);
    float r = fmaf(-k, 6.28318548202514648f, x);
    r = fmaf(-k, -1.7484556e-7f, r);
    __sincosf(r, s, c);
}

// Rotate the 4 pairs (a[j], b[j]) of group g (pairs 4g .. 4g + 3) in registers: rope_group's arithmetic,
// shared with the decode kernels, which rotate their query rows as they load them.
RF_DEVICE void rope_pairs(float* a, float* b, int g, int n_rot, float pos, float log2_base) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float s, c;
        rope_sincos(pos * rope_inv_freq(4 * g + j, n_rot, log2_base), &s, &c);
        float x0 = a[j], x1 = b[j];
        a[j] = x0 * c - x1 * s;
        b[j] = x0 * s + x1 * c;
    }
}

// Rotate the 4 pairs starting at pair 4*g of one head row: read from `x`, write to `y` (may be `x`).
// normal: elements 8g .. 8g+8; neox: elements 4g .. 4g+4 and n_rot/2 + 4g .. +4.
template <typename T, bool NEOX>
RF_DEVICE void rope_group(const T* x, T* y, int g, int n_rot, float pos, float log2_base) {
    float a[4], b[4];
    if (NEOX) {
        rf_vec4<T> va = *(const rf_vec4<T>*)(x + 4 * g), vb = *(const rf_vec4<T>*)(x + 4 * g + n_rot / 2);
#pragma unroll
        for (int j = 0; j < 4; j++) { a[j] = rf_to_f32(va.v[j]); b[j] = rf_to_f32(vb.v[j]); }
    } else {
        rf_vec4<T> v0 = *(const rf_vec4<T>*)(x + 8 * g), v1 = *(const rf_vec4<T>*)(x + 8 * g + 4);
        a[0] = rf_to_f32(v0.v[0]); b[0] = rf_to_f32(v0.v[1]); a[1] = rf_to_f32(v0.v[2]); b[1] = rf_to_f32(v0.v[3]);
        a[2] = rf_to_f32(v1.v[0]); b[2] = rf_to_f32(v1.v[1]); a[3] = rf_to_f32(v1.v[2]); b[3] = rf_to_f32(v1.v[3]);
    }
    rope_pairs(a, b, g, n_rot, pos, log2_base);
    if (NEOX) {
        rf_vec4<T> va, vb;
#pragma unroll
        for (int j = 0; j < 4; j++) { va.v[j] = rf_from_f32<T>(a[j]); vb.v[j] = rf_from_f32<T>(b[j]); }
        *(rf_vec4<T>*)(y + 4 * g) = va;
        *(rf_vec4<T>*)(y + 4 * g + n_rot / 2) = vb;
    } else {
        rf_vec4<T> v0, v1;
        v0.v[0] = rf_from_f32<T>(a[0]); v0.v[1] = rf_from_f32<T>(b[0]); v0.v[2] = rf_from_f32<T>(a[1]); v0.v[3] = rf_from_f32<T>(b[1]);
        v1.v[0] = rf_from_f32<T>(a[2]); v1.v[1] = rf_from_f32<T>(b[2]); v1.v[2] = rf_from_f32<T>(a[3]); v1.v[3] = rf_from_f32<T>(b[3]);
        *(rf_vec4<T>*)(y + 8 * g) = v0;
        *(rf_vec4<T>*)(y + 8 * g + 4) = v1;
    }
}

// One launch for Q and K: work items are (token, head over Q heads then K heads, group of 4 pairs).
template <typename T, bool NEOX>
RF_DEVICE void rope_qk(T* RF_RESTRICT q, T* RF_RESTRICT k, const int* RF_RESTRICT pos, int tokens, int hq, int hk,
                       int head_dim, int n_rot, float log2_base) {
    const int groups = n_rot / 8;
    const long long per_tok = (long long)(hq + hk) * groups;
    const long long total = per_tok * tokens;
    for (long long w = (long long)blockIdx.x * blockDim.x + threadIdx.x; w < total; w += (long long)gridDim.x * blockDim.x) {
        int t = (int)(w / per_tok);
        int r = (int)(w % per_tok);
        int h = r / groups, g = r % groups;
        T* row = h < hq ? q + ((long long)t * hq + h) * head_dim : k + ((long long)t * hk + (h - hq)) * head_dim;
        rope_group<T, NEOX>(row, row, g, n_rot, (float)pos[t], log2_base);
    }
}
