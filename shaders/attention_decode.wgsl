// Grouped-query attention of one new token per sequence over its KV cache (decode), split over
// the KV length so that even one sequence keeps every core busy:
//   attention_split:  each invocation takes `split_len` keys of one (sequence, head) and writes
//                     a partial result: running max m, sum l and unnormalised output o;
//   attention_reduce: combines the partials of each (sequence, head): o = Σ e^(m_s - M) o_s /
//                     Σ e^(m_s - M) l_s, with M the largest m_s.
// Partials are laid out per (b, h, split) as one vec4 (m, l, 0, 0) followed by HD4 vec4s of o.
// Serving (`attention_split_rows`): batch row b is qkv row row_base + b, and `rows` names its
// cache sequence and the position of its token, (sequence, position): it attends to keys
// 0..=position of that sequence, so one launch covers sequences at ragged depths (kv_len then
// only sizes the grid). The reduce writes output row row_base + b in both cases.

struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    q_stride4: u32,
    cache_len: u32,
    kv_len: u32,
    split_len: u32,
    n_splits: u32,
    batch: u32,
    scale: f32,
    row_base: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v_cache: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;

@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> rows: array<vec2<u32>>;

override WG: u32 = 64u;
override HD4: u32 = 16u;  // head_dim / 4, at most MAX_HD4

const MAX_HD4: u32 = 64u;
const NEG_BIG: f32 = -3.0e38;

@compute @workgroup_size(WG, 1, 1)
fn attention_split(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.z;
    if (b >= p.batch) {
        return;
    }
    split_keys(gid.x, gid.y, b, b * p.q_stride4, b, p.kv_len);
}

@compute @workgroup_size(WG, 1, 1)
fn attention_split_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.z;
    if (b >= p.batch) {
        return;
    }
    let row = rows[p.row_base + b];
    split_keys(gid.x, gid.y, b, (p.row_base + b) * p.q_stride4, row.x, row.y + 1u);
}

// One split of batch row b, head h: q from qkv at q_row4, keys 0..kv_len of cache sequence seq.
fn split_keys(split: u32, h: u32, b: u32, q_row4: u32, seq: u32, kv_len: u32) {
    if (split >= p.n_splits || h >= p.n_heads) {
        return;
    }
    let kv_head = h / (p.n_heads / p.n_kv_heads);
    var q: array<vec4<f32>, MAX_HD4>;
    let q_at = q_row4 + h * HD4;
    for (var d = 0u; d < HD4; d++) {
        q[d] = qkv[q_at + d] * p.scale;
    }
    var acc: array<vec4<f32>, MAX_HD4>;
    var m = NEG_BIG;
    var l = 0.0;
    let kv0 = (seq * p.n_kv_heads + kv_head) * p.cache_len * HD4;
    let first = split * p.split_len;
    let last = min(first + p.split_len, kv_len);
    for (var j = first; j < last; j++) {
        var dot4 = vec4(0.0);
        for (var d = 0u; d < HD4; d++) {
            dot4 = fma(q[d], k_cache[kv0 + j * HD4 + d], dot4);
        }
        let s = dot4.x + dot4.y + dot4.z + dot4.w;
        let m_new = max(m, s);
        let corr = exp(m - m_new);
        let pj = exp(s - m_new);
        l = l * corr + pj;
        for (var d = 0u; d < HD4; d++) {
            acc[d] = fma(vec4(pj), v_cache[kv0 + j * HD4 + d], acc[d] * corr);
        }
        m = m_new;
    }
    let at = ((b * p.n_heads + h) * p.n_splits + split) * (HD4 + 1u);
    partials[at] = vec4(m, l, 0.0, 0.0);
    for (var d = 0u; d < HD4; d++) {
        partials[at + 1u + d] = acc[d];
    }
}

@compute @workgroup_size(WG, 1, 1)
fn attention_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.x;
    let h = gid.y;
    let b = gid.z;
    if (d >= HD4 || h >= p.n_heads || b >= p.batch) {
        return;
    }
    let base = (b * p.n_heads + h) * p.n_splits * (HD4 + 1u);
    var m_all = NEG_BIG;
    for (var s = 0u; s < p.n_splits; s++) {
        m_all = max(m_all, partials[base + s * (HD4 + 1u)].x);
    }
    var l_all = 0.0;
    var o = vec4(0.0);
    for (var s = 0u; s < p.n_splits; s++) {
        let at = base + s * (HD4 + 1u);
        let ml = partials[at];
        let weight = exp(ml.x - m_all);
        l_all += weight * ml.y;
        o = fma(vec4(weight), partials[at + 1u + d], o);
    }
    out[(p.row_base + b) * p.n_heads * HD4 + h * HD4 + d] = o / l_all;
}
