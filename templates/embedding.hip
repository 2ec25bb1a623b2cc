// Embedding lookup: out[i, :] = table[ids[i], :], converted to the output type. Float tables are
// copied with 8-element (or 1-element) accesses; quantized tables are dequantized on the fly, 8
// elements per thread, through the format's dequant8 (quant_dequant.h). ids == nullptr means row
// i = row0 + i (dequantize a whole weight matrix, the first step of the BLAS fallback). An id outside
// [0, vocab) gives a row of NaN, never a read out of bounds.

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) emb_pack { T v[VEC]; };

RF_DEVICE float emb_nan() { return __int_as_float(0x7fc00000); }

template <typename TT, typename TO, int VEC>
RF_DEVICE void embed_float(int dim, int vocab, const int* RF_RESTRICT ids, long long row0, const TT* RF_RESTRICT table,
                           TO* RF_RESTRICT out) {
    const long long i = blockIdx.x;
    const long long id = ids ? (long long)ids[i] : row0 + i;
    const bool ok = id >= 0 && id < vocab;
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * VEC;
    if (c >= dim) return;
    emb_pack<TO, VEC> o;
    if (ok) {
        emb_pack<TT, VEC> p = *reinterpret_cast<const emb_pack<TT, VEC>*>(table + id * dim + c);
#pragma unroll
        for (int j = 0; j < VEC; ++j) o.v[j] = rf_from_f32<TO>(rf_to_f32(p.v[j]));
    } else {
#pragma unroll
        for (int j = 0; j < VEC; ++j) o.v[j] = rf_from_f32<TO>(emb_nan());
    }
    *reinterpret_cast<emb_pack<TO, VEC>*>(out + i * dim + c) = o;
}

template <typename FMT, typename TO>
RF_DEVICE void embed_quant(int dim, int vocab, const int* RF_RESTRICT ids, long long row0, const unsigned char* RF_RESTRICT table,
                           TO* RF_RESTRICT out) {
    const long long i = blockIdx.x;
    const long long id = ids ? (long long)ids[i] : row0 + i;
    const bool ok = id >= 0 && id < vocab;
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * 8;
    if (c >= dim) return;
    float v[8];
    if (ok) {
        const long long row_bytes = (long long)(dim / FMT::QK) * FMT::BYTES;
        FMT::dequant8(table + id * row_bytes + (long long)(c / FMT::QK) * FMT::BYTES, c % FMT::QK, v);
    } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = emb_nan();
    }
    emb_pack<TO, 8> o;
#pragma unroll
    for (int j = 0; j < 8; ++j) o.v[j] = rf_from_f32<TO>(v[j]);
    *reinterpret_cast<emb_pack<TO, 8>*>(out + i * dim + c) = o;
}
