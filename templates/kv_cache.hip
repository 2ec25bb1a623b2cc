// Paged KV cache append, optionally fused with RoPE on K (rope.hip is included before this file).
//
// Cache layout (K and V alike): [num_pages][n_kv_heads][page_size][head_dim], element type T.
// A sequence's logical token t lives in page block_tables[b * max_pages + t / page_size], row t % page_size.
// New tokens of sequence b are k_new/v_new rows cu_new[b] .. cu_new[b+1] ([tokens][n_kv_heads][head_dim]);
// they go to logical slots ctx_lens[b], ctx_lens[b] + 1, ... (ctx_lens = lengths before the append).

// Sequence of token t: the b with cu[b] <= t < cu[b+1] (binary search; cu is non-decreasing).
RF_DEVICE int kv_seq_of(const int* RF_RESTRICT cu, int nseq, int t) {
    int lo = 0, hi = nseq - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (cu[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// Group g (of head_dim / 8) of one token's K and V head rows into their cache rows: V copied, K rotated
// (rope_group: 4 pairs from group g on; groups past n_rot copied). kv_append and the decode kernels' fused
// append write the cache through this. ROPE: 0 none, 1 normal, 2 neox.
template <typename T, int ROPE>
RF_DEVICE void kv_put_group(const T* k_src, const T* v_src, T* k_dst, T* v_dst, int g, int n_rot, float pos, float log2_base) {
    *(uint4*)(v_dst + 8 * g) = *(const uint4*)(v_src + 8 * g);
    if (ROPE == 0 || 8 * g >= n_rot) {
        *(uint4*)(k_dst + 8 * g) = *(const uint4*)(k_src + 8 * g);
    } else {
        rope_group<T, ROPE == 2>(k_src, k_dst, g, n_rot, pos, log2_base);
    }
}

// Work item = (token, head, group of 8 elements), heads 0 .. n_kv the K/V heads, then (with q, hq > 0)
// the hq query heads, rotated in place: RoPE on Q and K and the append in one launch (a decode step's
// rope kernel folded in). ROPE: 0 none, 1 normal, 2 neox.
template <typename T, int ROPE>
RF_DEVICE void kv_append(const T* RF_RESTRICT k_new, const T* RF_RESTRICT v_new, const int* RF_RESTRICT pos,
                         const int* RF_RESTRICT cu_new, const int* RF_RESTRICT ctx_lens, const int* RF_RESTRICT block_tables,
                         int nseq, int max_pages, int page_size, int n_kv, int head_dim, int n_rot, float log2_base,
                         T* RF_RESTRICT k_cache, T* RF_RESTRICT v_cache, T* RF_RESTRICT q, int hq) {
    const int groups = head_dim / 8;
    const int tokens = cu_new[nseq];
    const int heads = n_kv + (ROPE != 0 && q != nullptr ? hq : 0);
    const long long total = (long long)tokens * heads * groups;
    for (long long w = (long long)blockIdx.x * blockDim.x + threadIdx.x; w < total; w += (long long)gridDim.x * blockDim.x) {
        const int g = (int)(w % groups);
        const long long tw = w / groups;
        const int hh = (int)(tw % heads);
        const int t = (int)(tw / heads);
        if (hh >= n_kv) {  // a query head: rotate in place (ROPE != 0 here)
            if (8 * g < n_rot) {
                T* row = q + ((long long)t * hq + (hh - n_kv)) * head_dim;
                rope_group<T, ROPE == 2>(row, row, g, n_rot, (float)pos[t], log2_base);
            }
            continue;
        }
        const int h = hh;
        const long long th = (long long)t * n_kv + h;
        const int b = kv_seq_of(cu_new, nseq, t);
        const int slot = ctx_lens[b] + (t - cu_new[b]);
        const int page = block_tables[(long long)b * max_pages + slot / page_size];
        const long long dst = (((long long)page * n_kv + h) * page_size + slot % page_size) * head_dim;
        const long long src = th * head_dim;
        kv_put_group<T, ROPE>(k_new + src, v_new + src, k_cache + dst, v_cache + dst, g, n_rot, (float)pos[t], log2_base);
    }
}
