// Causal grouped-query attention for prefill, in two layouts that share uniforms and bindings:
//
// `attention_prefill` (CPU adapters, where invocations are SIMD lanes and barriers are costly):
// each invocation owns one query row of one head and streams its sequence's keys and values
// once, keeping a running max and sum (online softmax), so the P × P score matrix never exists.
// Keys go in blocks of KB so the running sums are rescaled once per block, not once per key.
//
// `attention_tiles` (FlashAttention-2 layout, GPUs): a workgroup per (tile of BR query rows,
// head). K and V tiles of BC keys are staged in workgroup memory and shared by the tile's rows;
// every row keeps its online softmax in registers, and key tiles past the tile's last position
// (fully masked by causality) are never loaded. See `flash_tile`.
//
// q comes from the rotated `qkv` rows; K and V from the layer's cache, laid out
// [batch, kv_head, cache_len, head_dim]; query head h reads kv head h / (n_heads / n_kv_heads).
// The output row of token t is [head 0 | head 1 | ...], each head_dim wide.
// Serving (`attention_prefill_rows`, `attention_tiles_rows`): row t names its cache sequence and
// position in `rows[t]` = (sequence, position) and attends to keys 0..=position of that
// sequence: a chunk of a prompt that continues where an earlier chunk stopped.
//
// Sliding window (gpt-oss): with `window` > 0 the query at position pos attends to keys
// pos + 1 - window ..= pos only. The per-row layout starts its key loop at the window; the tiled
// layout starts its key tiles at the smallest window start of the tile's rows (tiles wholly
// before every row's window are never loaded) and masks each row's window inside the tiles.
// Sinks (gpt-oss, SINKS): one logit per query head, `sinks[h]`, joins the softmax denominator
// and adds no value: out = Σ e^(s_j - M) v_j / (Σ e^(s_j - M) + e^(sink - M)).
//
// K and V are read through the KV format src/kernels/attention.rs prepends
// (shaders/common/kv/read_*.wgsl: `kv_word`, `k_vec4`, `v_vec4`; f32, packed f16 or q8_0
// blocks), unpacked in registers (the tiled layout stages them in workgroup memory as f32);
// every sum is f32.

struct Params {
    tokens: u32,
    seq_len: u32,
    n_heads: u32,
    n_kv_heads: u32,
    qkv_stride4: u32,
    cache_len: u32,
    scale: f32,
    // Keys per query (sliding window); 0: all keys up to the query's position.
    window: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k_cache: array<kv_word>;
@group(0) @binding(3) var<storage, read> v_cache: array<kv_word>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> rows: array<vec2<u32>>;
// n_heads sink logits when SINKS; a dummy otherwise (read only behind SINKS).
@group(0) @binding(6) var<storage, read> sinks: array<f32>;

override WG: u32 = 64u;
override HD4: u32 = 16u;  // head_dim / 4, at most MAX_HD4
// attention_tiles only: query rows and keys per tile, and vec4s of the head each of a row's
// R = WG / BR lanes owns (ceil(HD4 / R), at most MAX_NV). The host always sets them; the
// defaults keep the tile arrays small in the per-row entries' pipelines.
override BR: u32 = 1u;
override BC: u32 = 1u;
override NV: u32 = 1u;
// attention_tiles only: keys each lane scores, ceil(BC / R) (at most MAX_KT).
override KT: u32 = 1u;
// Whether `sinks` holds a sink logit per query head.
override SINKS: bool = false;

const MAX_HD4: u32 = 64u;
const KB: u32 = 8u;
const NEG_BIG: f32 = -3.0e38;
const MAX_NV: u32 = 4u;
const MAX_KT: u32 = 8u;
const NO_SEQUENCE: u32 = 0xffffffffu;

// attention_tiles: the tile's q rows (scaled), the K and V tiles, the scores, and the
// bookkeeping of the sequence loop.
var<workgroup> q_tile: array<vec4<f32>, BR * HD4>;
var<workgroup> k_tile: array<vec4<f32>, BC * HD4>;
var<workgroup> v_tile: array<vec4<f32>, BC * HD4>;
var<workgroup> s_tile: array<f32, BR * BC>;
var<workgroup> next_seq: atomic<u32>;
var<workgroup> keys_needed: atomic<u32>;
var<workgroup> keys_first: atomic<u32>;
var<workgroup> shared_u32: u32;
var<workgroup> shared_range: vec2<u32>;

@compute @workgroup_size(WG, 1, 1)
fn attention_prefill(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.tokens) {
        return;
    }
    attend(t, gid.y, t / p.seq_len, t % p.seq_len + 1u);
}

@compute @workgroup_size(WG, 1, 1)
fn attention_prefill_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.tokens) {
        return;
    }
    let row = rows[t];
    attend(t, gid.y, row.x, row.y + 1u);
}

// The first key in the window of the query at position n_keys - 1 (keys 0..n_keys are causal).
fn window_start(n_keys: u32) -> u32 {
    if (p.window == 0u || n_keys <= p.window) {
        return 0u;
    }
    return n_keys - p.window;
}

// The factor that turns head h's unnormalised output (running max m, sum l) into its
// attention output: 1 / l, or with a sink 1 / (l + e^(sink - m)), taken about max(m, sink) so
// that a sink far above the scores cannot overflow.
fn normaliser(h: u32, m: f32, l: f32) -> f32 {
    if (!SINKS) {
        return 1.0 / l;
    }
    let sink = sinks[h];
    let m_all = max(m, sink);
    let corr = exp(m - m_all);
    return corr / (l * corr + exp(sink - m_all));
}

// Query row t, head h, over the keys of cache sequence b in the window of the query at
// position n_keys - 1.
fn attend(t: u32, h: u32, b: u32, n_keys: u32) {
    if (h >= p.n_heads) {
        return;
    }
    let kv_head = h / (p.n_heads / p.n_kv_heads);
    var q: array<vec4<f32>, MAX_HD4>;
    let q_at = t * p.qkv_stride4 + h * HD4;
    for (var d = 0u; d < HD4; d++) {
        q[d] = qkv[q_at + d] * p.scale;
    }
    var acc: array<vec4<f32>, MAX_HD4>;
    var m = NEG_BIG;
    var l = 0.0;
    let row0 = (b * p.n_kv_heads + kv_head) * p.cache_len;
    for (var j0 = window_start(n_keys); j0 < n_keys; j0 += KB) {
        var s: array<f32, KB>;
        var m_blk = m;
        for (var jj = 0u; jj < KB; jj++) {
            let j = j0 + jj;
            var score = NEG_BIG;
            if (j < n_keys) {
                var dot4 = vec4(0.0);
                for (var d = 0u; d < HD4; d++) {
                    dot4 = fma(q[d], k_vec4(row0 + j, HD4, d), dot4);
                }
                score = dot4.x + dot4.y + dot4.z + dot4.w;
            }
            s[jj] = score;
            m_blk = max(m_blk, score);
        }
        let corr = exp(m - m_blk);
        l *= corr;
        for (var d = 0u; d < HD4; d++) {
            acc[d] *= corr;
        }
        for (var jj = 0u; jj < KB; jj++) {
            let j = j0 + jj;
            if (j < n_keys) {
                let pj = exp(s[jj] - m_blk);
                l += pj;
                for (var d = 0u; d < HD4; d++) {
                    acc[d] = fma(vec4(pj), v_vec4(row0 + j, HD4, d), acc[d]);
                }
            }
        }
        m = m_blk;
    }
    let o_at = t * p.n_heads * HD4 + h * HD4;
    let norm = normaliser(h, m, l);
    for (var d = 0u; d < HD4; d++) {
        out[o_at + d] = acc[d] * norm;
    }
}

@compute @workgroup_size(WG, 1, 1)
fn attention_tiles(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Tiles never straddle two prompts: x is the tile within prompt z.
    let i0 = wid.x * BR;
    if (i0 >= p.seq_len) {
        return;
    }
    let n_rows = min(BR, p.seq_len - i0);
    flash_tile(wid.y, lid, wid.z * p.seq_len + i0, n_rows, wid.z, i0 + lid / (WG / BR));
}

@compute @workgroup_size(WG, 1, 1)
fn attention_tiles_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t0 = wid.x * BR;
    if (t0 >= p.tokens) {
        return;
    }
    let n_rows = min(BR, p.tokens - t0);
    let r = lid / (WG / BR);
    var row = vec2(NO_SEQUENCE, 0u);
    if (r < n_rows) {
        row = rows[t0 + r];
    }
    flash_tile(wid.y, lid, t0, n_rows, row.x, row.y);
}

// Head h of query rows t0..t0 + n_rows; this lane's row r = lid / R is of cache sequence seq
// at position pos and attends to keys window_start(pos + 1)..=pos. Rows of one tile may belong
// to different sequences (serving): the tile takes its sequences one at a time, smallest first,
// each over the keys its rows need (from the smallest window start of its rows to the largest
// position); a whole-prompt tile has one.
//
// Per key tile: the workgroup loads K and V (contiguous rows, so the loads coalesce); lane
// (r, c) scores keys c, c + R, ... of the tile against row r (q and k from workgroup memory,
// each q vec4 read once for the lane's KT keys);
// then lane c of row r owns vec4s c, c + R, ... of the output and folds the tile into the
// row's running max, sum and output: one rescale per tile. The R lanes of a row compute the
// same softmax weights, which costs an exp per key and lane but no cross-lane reduction.
fn flash_tile(h: u32, lid: u32, t0: u32, n_rows: u32, seq: u32, pos: u32) {
    let lanes = WG / BR;
    let r = lid / lanes;
    let c = lid % lanes;
    let kv_head = h / (p.n_heads / p.n_kv_heads);
    for (var i = lid; i < BR * HD4; i += WG) {
        let rr = i / HD4;
        var q = vec4(0.0);
        if (rr < n_rows) {
            q = qkv[(t0 + rr) * p.qkv_stride4 + h * HD4 + i % HD4] * p.scale;
        }
        q_tile[i] = q;
    }
    var done = r >= n_rows;
    var m = NEG_BIG;
    var l = 0.0;
    var acc: array<vec4<f32>, MAX_NV>;
    for (var i = 0u; i < NV; i++) {
        acc[i] = vec4(0.0);
    }
    loop {
        if (lid == 0u) {
            atomicStore(&next_seq, NO_SEQUENCE);
            atomicStore(&keys_needed, 0u);
            atomicStore(&keys_first, NO_SEQUENCE);
        }
        workgroupBarrier();
        if (!done) {
            atomicMin(&next_seq, seq);
        }
        workgroupBarrier();
        if (lid == 0u) {
            shared_u32 = atomicLoad(&next_seq);
        }
        let cur = workgroupUniformLoad(&shared_u32);
        if (cur == NO_SEQUENCE) {
            break;
        }
        let mine = !done && seq == cur;
        let first = window_start(pos + 1u);
        if (mine) {
            atomicMax(&keys_needed, pos + 1u);
            atomicMin(&keys_first, first);
        }
        workgroupBarrier();
        if (lid == 0u) {
            shared_range = vec2(atomicLoad(&keys_first), atomicLoad(&keys_needed));
        }
        let range = workgroupUniformLoad(&shared_range);
        let n_keys = range.y;
        let row0 = (cur * p.n_kv_heads + kv_head) * p.cache_len;
        // Key tiles start at the first key any row of the tile attends to.
        for (var j0 = range.x; j0 < n_keys; j0 += BC) {
            let tile_len = min(BC, n_keys - j0) * HD4;
            for (var i = lid; i < BC * HD4; i += WG) {
                var k = vec4(0.0);
                var v = vec4(0.0);
                if (i < tile_len) {
                    k = k_vec4(row0 + j0 + i / HD4, HD4, i % HD4);
                    v = v_vec4(row0 + j0 + i / HD4, HD4, i % HD4);
                }
                k_tile[i] = k;
                v_tile[i] = v;
            }
            workgroupBarrier();
            // Keys j0 + lo..j0 + n_valid of the tile are this row's (causal, in its window).
            var lo = 0u;
            var n_valid = 0u;
            if (mine && pos >= j0) {
                n_valid = min(BC, pos + 1u - j0);
                lo = min(max(first, j0) - j0, n_valid);
            }
            // KT keys per lane at once: each q vec4 read serves all of them.
            if (n_valid > c) {
                var dots: array<vec4<f32>, MAX_KT>;
                for (var t = 0u; t < KT; t++) {
                    dots[t] = vec4(0.0);
                }
                for (var d = 0u; d < HD4; d++) {
                    let q = q_tile[r * HD4 + d];
                    for (var t = 0u; t < KT; t++) {
                        // Keys past the tile (when lanes do not divide BC) read its last row.
                        let jj = min(c + t * lanes, BC - 1u);
                        dots[t] = fma(q, k_tile[jj * HD4 + d], dots[t]);
                    }
                }
                for (var t = 0u; t < KT; t++) {
                    let jj = c + t * lanes;
                    if (jj >= lo && jj < n_valid) {
                        s_tile[r * BC + jj] = dots[t].x + dots[t].y + dots[t].z + dots[t].w;
                    }
                }
            }
            workgroupBarrier();
            if (n_valid > lo) {
                var m_new = m;
                for (var jj = lo; jj < n_valid; jj++) {
                    m_new = max(m_new, s_tile[r * BC + jj]);
                }
                let corr = exp(m - m_new);
                l *= corr;
                for (var i = 0u; i < NV; i++) {
                    acc[i] *= corr;
                }
                m = m_new;
                for (var jj = lo; jj < n_valid; jj++) {
                    let pj = exp(s_tile[r * BC + jj] - m);
                    l += pj;
                    for (var i = 0u; i < NV; i++) {
                        let d = c + i * lanes;
                        if (d < HD4) {
                            acc[i] = fma(vec4(pj), v_tile[jj * HD4 + d], acc[i]);
                        }
                    }
                }
            }
            // The next tile overwrites K, V and the scores.
            workgroupBarrier();
        }
        if (mine) {
            let o_at = (t0 + r) * p.n_heads * HD4 + h * HD4;
            let norm = normaliser(h, m, l);
            for (var i = 0u; i < NV; i++) {
                let d = c + i * lanes;
                if (d < HD4) {
                    out[o_at + d] = acc[i] * norm;
                }
            }
            done = true;
        }
    }
}
