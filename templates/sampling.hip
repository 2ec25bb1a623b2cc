// Greedy argmax over rows of logits: out[r] = index of the largest element of row r.
//
// One block per row. NaN counts as smaller than every number (-inf included); ties, +0 and -0
// included, go to the lowest index. Each element becomes an ordered 32-bit key (NaN -> 0, the
// smallest); a thread keeps its best (key, index) with a strict compare, which keeps the lowest index
// because a thread's indices only grow. The block then reduces (key, ~index) packed into 64 bits with
// a max: the largest key wins, and among equal keys the smallest index. Rows are read once with
// VEC-element (16-byte) loads, AM_UNROLL of them in flight per thread. Only out[r] is written.

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) am_pack { T v[VEC]; };

constexpr int AM_UNROLL = 4;

// Ordered key of a float: a > b (as numbers, NaN below everything) <=> key(a) > key(b). Works on the
// bits, so it holds whatever the compiler assumes about NaN.
RF_DEVICE unsigned int am_key(float v) {
    unsigned int u = __float_as_uint(v);
    const unsigned int mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u) return 0u;  // NaN
    if (mag == 0u) u = 0u;             // -0 equals +0
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// 64-bit shuffle as two 32-bit ones (both vendors shuffle 32-bit ints).
RF_DEVICE unsigned long long am_shfl_xor(unsigned long long v, int m) {
    const int lo = RF_SHFL_XOR((int)(unsigned int)(v & 0xffffffffull), m);
    const int hi = RF_SHFL_XOR((int)(unsigned int)(v >> 32), m);
    return ((unsigned long long)(unsigned int)hi << 32) | (unsigned long long)(unsigned int)lo;
}

// Max over one wave of RF_WAVE lanes; every lane gets it.
RF_DEVICE unsigned long long am_wave_max(unsigned long long v) {
#pragma unroll
    for (int m = RF_WAVE / 2; m > 0; m >>= 1) {
        const unsigned long long o = am_shfl_xor(v, m);
        v = o > v ? o : v;
    }
    return v;
}

template <typename T, int VEC>
RF_DEVICE void am_scan(const am_pack<T, VEC>& p, int first, unsigned int& best, int& besti) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
        const unsigned int k = am_key(rf_to_f32(p.v[j]));
        if (k > best) {
            best = k;
            besti = first + j;
        }
    }
}

// VEC must divide vocab (the launcher picks it so), which also keeps every row 16-byte aligned.
template <typename T, int BLOCK, int VEC>
RF_DEVICE void argmax_row(const T* RF_RESTRICT logits, int vocab, int* RF_RESTRICT out) {
    static_assert(BLOCK % RF_WAVE == 0, "block must be a whole number of waves");
    constexpr int NW = BLOCK / RF_WAVE;
    static_assert(NW <= RF_WAVE, "one wave reduces the per-wave results");
    __shared__ unsigned long long scratch[NW];
    const long long row = blockIdx.x;
    const am_pack<T, VEC>* x = reinterpret_cast<const am_pack<T, VEC>*>(logits + row * (long long)vocab);
    const int nvec = vocab / VEC;
    const int tid = threadIdx.x;
    // Key 0 with the thread's first index: a thread that sees only NaN reports its first element.
    unsigned int best = 0u;
    int besti = tid * VEC;
    int i = tid;
    for (; i + (AM_UNROLL - 1) * BLOCK < nvec; i += AM_UNROLL * BLOCK) {
        am_pack<T, VEC> p[AM_UNROLL];
#pragma unroll
        for (int u = 0; u < AM_UNROLL; ++u) p[u] = x[i + u * BLOCK];
#pragma unroll
        for (int u = 0; u < AM_UNROLL; ++u) am_scan<T, VEC>(p[u], (i + u * BLOCK) * VEC, best, besti);
    }
    for (; i < nvec; i += BLOCK) am_scan<T, VEC>(x[i], i * VEC, best, besti);

    unsigned long long packed = ((unsigned long long)best << 32) | (unsigned long long)(~(unsigned int)besti);
    packed = am_wave_max(packed);
    const int lane = tid % RF_WAVE, wid = tid / RF_WAVE;
    if (lane == 0) scratch[wid] = packed;
    __syncthreads();
    if (wid == 0) {
        unsigned long long t = lane < NW ? scratch[lane] : 0ull;
        t = am_wave_max(t);
        if (lane == 0) out[row] = (int)~(unsigned int)(t & 0xffffffffull);
    }
}
