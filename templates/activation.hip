// Elementwise activations over [rows, cols]: out = f(a, b). Inputs have row strides (so a fused
// gate_up [rows, 2*cols] projection is read in place); out is contiguous. f32 arithmetic, one rounding.

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) act_pack { T v[VEC]; };

enum { ACT_SWIGLU = 0, ACT_GELU_TANH = 1, ACT_GELU_ERF = 2, ACT_ADD = 3 };

template <int KIND>
RF_DEVICE float act_apply(float a, float b) {
    if (KIND == ACT_SWIGLU) return a / (1.0f + expf(-a)) * b;
    if (KIND == ACT_GELU_TANH) {
        const float k0 = 0.7978845608028654f, k1 = 0.044715f;  // sqrt(2/pi)
        return 0.5f * a * (1.0f + tanhf(k0 * (a + k1 * a * a * a)));
    }
    if (KIND == ACT_GELU_ERF) return 0.5f * a * (1.0f + erff(a * 0.7071067811865476f));
    return a + b;
}

template <typename T, int KIND, int VEC>
RF_DEVICE void act_rows(long long rows, int cols, const T* RF_RESTRICT a, long long a_stride, const T* RF_RESTRICT b,
                        long long b_stride, T* RF_RESTRICT out) {
    const int vpr = cols / VEC;  // vectors per row
    const long long total = rows * vpr;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < total; v += (long long)gridDim.x * blockDim.x) {
        const long long r = v / vpr;
        const int c = (int)(v - r * vpr) * VEC;
        act_pack<T, VEC> pa = *reinterpret_cast<const act_pack<T, VEC>*>(a + r * a_stride + c), pb, o;
        if (KIND == ACT_SWIGLU || KIND == ACT_ADD) pb = *reinterpret_cast<const act_pack<T, VEC>*>(b + r * b_stride + c);
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            const float y = act_apply<KIND>(rf_to_f32(pa.v[j]), (KIND == ACT_SWIGLU || KIND == ACT_ADD) ? rf_to_f32(pb.v[j]) : 0.0f);
            o.v[j] = rf_from_f32<T>(y);
        }
        *reinterpret_cast<act_pack<T, VEC>*>(out + r * cols + c) = o;
    }
}
