// Causal grouped-query attention for prefill, flash-attention style: each invocation owns one
// query row of one head and streams its sequence's keys and values once, keeping a running max
// and sum (online softmax), so the P × P score matrix never exists. Keys go in blocks of KB so
// the running sums are rescaled once per block, not once per key.
//
// q comes from the rotated `qkv` rows; K and V from the layer's cache, laid out
// [batch, kv_head, cache_len, head_dim]; query head h reads kv head h / (n_heads / n_kv_heads).
// The output row of token t is [head 0 | head 1 | ...], each head_dim wide.
// Serving (`attention_prefill_rows`): row t names its cache sequence and position in
// `rows[t]` = (sequence, position) and attends to keys 0..=position of that sequence: a chunk
// of a prompt that continues where an earlier chunk stopped.

struct Params {
    tokens: u32,
    seq_len: u32,
    n_heads: u32,
    n_kv_heads: u32,
    qkv_stride4: u32,
    cache_len: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v_cache: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> rows: array<vec2<u32>>;

override WG: u32 = 64u;
override HD4: u32 = 16u;  // head_dim / 4, at most MAX_HD4

const MAX_HD4: u32 = 64u;
const KB: u32 = 8u;
const NEG_BIG: f32 = -3.0e38;

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

// Query row t, head h, over keys 0..n_keys of cache sequence b.
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
    let kv0 = (b * p.n_kv_heads + kv_head) * p.cache_len * HD4;
    for (var j0 = 0u; j0 < n_keys; j0 += KB) {
        var s: array<f32, KB>;
        var m_blk = m;
        for (var jj = 0u; jj < KB; jj++) {
            let j = j0 + jj;
            var score = NEG_BIG;
            if (j < n_keys) {
                var dot4 = vec4(0.0);
                for (var d = 0u; d < HD4; d++) {
                    dot4 = fma(q[d], k_cache[kv0 + j * HD4 + d], dot4);
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
                    acc[d] = fma(vec4(pj), v_cache[kv0 + j * HD4 + d], acc[d]);
                }
            }
        }
        m = m_blk;
    }
    let o_at = t * p.n_heads * HD4 + h * HD4;
    for (var d = 0u; d < HD4; d++) {
        out[o_at + d] = acc[d] / l;
    }
}
