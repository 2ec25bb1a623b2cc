// Row normalisation: RMSNorm, RMSNorm fused with the residual add, LayerNorm. One block per row,
// f32 accumulation; each thread keeps up to NORM_ITEMS vectors of its row in registers, so the row
// is read from memory once (longer rows re-read the rest).

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) norm_pack { T v[VEC]; };

template <typename T, int VEC>
RF_DEVICE norm_pack<T, VEC> norm_load(const T* p) { return *reinterpret_cast<const norm_pack<T, VEC>*>(p); }
template <typename T, int VEC>
RF_DEVICE void norm_store(T* p, const norm_pack<T, VEC>& v) { *reinterpret_cast<norm_pack<T, VEC>*>(p) = v; }

constexpr int NORM_ITEMS = 4;
enum { NORM_RMS = 0, NORM_RMS_ADD = 1, NORM_LAYER = 2 };

// Loads vector i of the row into v (f32). For NORM_RMS_ADD, x + r is rounded to T, written back to
// the residual row and used: the stored residual and the normalised value agree.
template <typename T, int KIND, int VEC>
RF_DEVICE void norm_fetch(int i, const T* RF_RESTRICT xr, T* RF_RESTRICT rr, float* v) {
    norm_pack<T, VEC> p = norm_load<T, VEC>(xr + (long long)i * VEC);
    if (KIND == NORM_RMS_ADD) {
        norm_pack<T, VEC> r = norm_load<T, VEC>(rr + (long long)i * VEC);
#pragma unroll
        for (int j = 0; j < VEC; ++j) p.v[j] = rf_from_f32<T>(rf_to_f32(p.v[j]) + rf_to_f32(r.v[j]));
        norm_store<T, VEC>(rr + (long long)i * VEC, p);
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j) v[j] = rf_to_f32(p.v[j]);
}

template <typename T, int KIND, int BLOCK, int VEC>
RF_DEVICE void norm_row(int hidden, float eps, const T* RF_RESTRICT x, T* RF_RESTRICT residual, const T* RF_RESTRICT w,
                        const T* RF_RESTRICT b, T* RF_RESTRICT out) {
    __shared__ float scratch[BLOCK / RF_WAVE];
    const long long row = blockIdx.x;
    const int nvec = hidden / VEC;
    const T* xr = x + row * hidden;
    T* rr = KIND == NORM_RMS_ADD ? residual + row * hidden : nullptr;
    T* orow = out + row * hidden;
    // after the add the row lives in the residual
    const T* src = KIND == NORM_RMS_ADD ? (const T*)rr : xr;

    float cache[NORM_ITEMS][VEC];
    norm_pack<T, VEC> wcache[NORM_ITEMS];  // the weights, loaded before the reduction (off its critical path)
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < NORM_ITEMS; ++k) {
        const int i = threadIdx.x + k * BLOCK;
        if (i < nvec) {
            wcache[k] = norm_load<T, VEC>(w + (long long)i * VEC);
            norm_fetch<T, KIND, VEC>(i, xr, rr, cache[k]);
#pragma unroll
            for (int j = 0; j < VEC; ++j) acc += KIND == NORM_LAYER ? cache[k][j] : cache[k][j] * cache[k][j];
        }
    }
    for (int i = threadIdx.x + NORM_ITEMS * BLOCK; i < nvec; i += BLOCK) {
        float v[VEC];
        norm_fetch<T, KIND, VEC>(i, xr, rr, v);
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc += KIND == NORM_LAYER ? v[j] : v[j] * v[j];
    }
    const float inv_n = 1.0f / (float)hidden;
    acc = rf_block_sum<BLOCK>(acc, scratch);
    float mean = 0.0f, scale;
    if (KIND == NORM_LAYER) {
        // two passes over the cached values: the variance of centred data
        mean = acc * inv_n;
        float var = 0.0f;
#pragma unroll
        for (int k = 0; k < NORM_ITEMS; ++k) {
            if (threadIdx.x + k * BLOCK < nvec) {
#pragma unroll
                for (int j = 0; j < VEC; ++j) var += (cache[k][j] - mean) * (cache[k][j] - mean);
            }
        }
        for (int i = threadIdx.x + NORM_ITEMS * BLOCK; i < nvec; i += BLOCK) {
            norm_pack<T, VEC> p = norm_load<T, VEC>(src + (long long)i * VEC);
#pragma unroll
            for (int j = 0; j < VEC; ++j) var += (rf_to_f32(p.v[j]) - mean) * (rf_to_f32(p.v[j]) - mean);
        }
        var = rf_block_sum<BLOCK>(var, scratch);
        scale = rsqrtf(var * inv_n + eps);
    } else {
        scale = rsqrtf(acc * inv_n + eps);
    }
#pragma unroll
    for (int k = 0; k < NORM_ITEMS; ++k) {
        const int i = threadIdx.x + k * BLOCK;
        if (i < nvec) {
            const norm_pack<T, VEC>& wp = wcache[k];
            norm_pack<T, VEC> o;
            if (KIND == NORM_LAYER) {
                norm_pack<T, VEC> bp = norm_load<T, VEC>(b + (long long)i * VEC);
#pragma unroll
                for (int j = 0; j < VEC; ++j) o.v[j] = rf_from_f32<T>((cache[k][j] - mean) * scale * rf_to_f32(wp.v[j]) + rf_to_f32(bp.v[j]));
            } else {
#pragma unroll
                for (int j = 0; j < VEC; ++j) o.v[j] = rf_from_f32<T>(cache[k][j] * scale * rf_to_f32(wp.v[j]));
            }
            norm_store<T, VEC>(orow + (long long)i * VEC, o);
        }
    }
    for (int i = threadIdx.x + NORM_ITEMS * BLOCK; i < nvec; i += BLOCK) {
        norm_pack<T, VEC> p = norm_load<T, VEC>(src + (long long)i * VEC);
        norm_pack<T, VEC> wp = norm_load<T, VEC>(w + (long long)i * VEC), o;
        if (KIND == NORM_LAYER) {
            norm_pack<T, VEC> bp = norm_load<T, VEC>(b + (long long)i * VEC);
#pragma unroll
            for (int j = 0; j < VEC; ++j) o.v[j] = rf_from_f32<T>((rf_to_f32(p.v[j]) - mean) * scale * rf_to_f32(wp.v[j]) + rf_to_f32(bp.v[j]));
        } else {
#pragma unroll
            for (int j = 0; j < VEC; ++j) o.v[j] = rf_from_f32<T>(rf_to_f32(p.v[j]) * scale * rf_to_f32(wp.v[j]));
        }
        norm_store<T, VEC>(orow + (long long)i * VEC, o);
    }
}
