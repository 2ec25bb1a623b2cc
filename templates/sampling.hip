// Greedy argmax over rows of logits: out[r] = index of the largest element of row r.
//
// One block per row. NaN counts as smaller than every number (-inf included); ties, +0 and -0
// included, go to the lowest index. Each thread scans its elements with a strict float compare,
// which keeps the lowest index of equal values because a thread's indices only grow; its best then
// becomes an ordered 32-bit key, and the block reduces (key, ~index) packed into 64 bits with a max:
// the largest key wins, and among equal keys the smallest index. Rows are read once with VEC-element
// (16-byte) loads, AM_UNROLL of them in flight per thread. Only out[r] is written.

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
RF_DEVICE void am_scan(const am_pack<T, VEC>& p, int first, float& best, int& besti) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
        const float v = rf_to_f32(p.v[j]);
        // strict: NaN never wins, and of equal values (+0 and -0 too) the earlier index stays
        const bool take = v > best;
        best = take ? v : best;
        besti = take ? first + j : besti;
    }
}

// Max of (key, ~index) over the block; every thread gets it. `scratch` holds BLOCK / RF_WAVE entries.
template <int BLOCK>
RF_DEVICE unsigned long long am_block_max(unsigned long long v, unsigned long long* scratch) {
    constexpr int NW = BLOCK / RF_WAVE;
    static_assert(NW <= RF_WAVE, "one wave reduces the per-wave results");
    v = am_wave_max(v);
    const int lane = threadIdx.x % RF_WAVE, wid = threadIdx.x / RF_WAVE;
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[wid] = v;
    __syncthreads();
    return am_wave_max(lane < NW ? scratch[lane] : 0ull);
}

RF_DEVICE unsigned long long am_pack_best(unsigned int key, int index) {
    return ((unsigned long long)key << 32) | (unsigned long long)(~(unsigned int)index);
}

// VEC must divide vocab (the launcher picks it so), which also keeps every row 16-byte aligned.
//
// The scan compares floats (`v > best` from -inf: one compare and two selects per element), so a
// thread only remembers elements above -inf; its best becomes a (key, ~index) pair for the block
// reduction. A row with nothing above -inf (only -inf and NaN) is rare and gets a second pass: the
// first -inf, else (all NaN) index 0.
template <typename T, int BLOCK, int VEC>
RF_DEVICE void argmax_row(const T* RF_RESTRICT logits, int vocab, int* RF_RESTRICT out) {
    static_assert(BLOCK % RF_WAVE == 0, "block must be a whole number of waves");
    __shared__ unsigned long long scratch[BLOCK / RF_WAVE];
    const long long row = blockIdx.x;
    const am_pack<T, VEC>* x = reinterpret_cast<const am_pack<T, VEC>*>(logits + row * (long long)vocab);
    const int nvec = vocab / VEC;
    const int tid = threadIdx.x;
    float best = RF_NEG_INF;
    int besti = -1;
    int i = tid;
    for (; i + (AM_UNROLL - 1) * BLOCK < nvec; i += AM_UNROLL * BLOCK) {
        am_pack<T, VEC> p[AM_UNROLL];
#pragma unroll
        for (int u = 0; u < AM_UNROLL; ++u) p[u] = x[i + u * BLOCK];
#pragma unroll
        for (int u = 0; u < AM_UNROLL; ++u) am_scan<T, VEC>(p[u], (i + u * BLOCK) * VEC, best, besti);
    }
    for (; i < nvec; i += BLOCK) am_scan<T, VEC>(x[i], i * VEC, best, besti);

    unsigned long long r = am_block_max<BLOCK>(besti >= 0 ? am_pack_best(am_key(best), besti) : 0ull, scratch);
    if (r == 0ull) {
        // nothing above -inf: the lowest index holding -inf (key 1), else 0
        int first = -1;
        for (int e = tid; e < vocab && first < 0; e += BLOCK) {
            if (__float_as_uint(rf_to_f32(logits[row * (long long)vocab + e])) == 0xff800000u) first = e;
        }
        r = am_block_max<BLOCK>(first >= 0 ? am_pack_best(1u, first) : 0ull, scratch);
        if (r == 0ull) r = am_pack_best(0u, 0);
    }
    if (tid == 0) out[row] = (int)~(unsigned int)(r & 0xffffffffull);
}
