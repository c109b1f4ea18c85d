// Grouped-query attention of one new token per sequence over its KV cache (decode), split over
// the KV length so that even one sequence keeps every core busy. Two layouts of the split pass
// write the same partials, and one reduce combines them:
//   attention_split:  each invocation takes `split_len` keys of one (sequence, head) and writes
//                     a partial result: running max m, sum l and unnormalised output o (CPU
//                     adapters, where invocations are SIMD lanes and barriers are costly);
//   attention_groups: a workgroup per (split, KV head, sequence) takes `split_len` keys for GW
//                     query heads of the KV head's group at once, so each key and value row is
//                     read once for all of them (see `group_keys`);
//   attention_subgroups: the same workgroups, with each subgroup's lanes spanning the head, so
//                     neighbouring lanes read neighbouring words of a key row and subgroupAdd
//                     reduces each score (adapters with SUBGROUP: in
//                     shaders/attention_decode_subgroup.wgsl, appended to this file, so that
//                     adapters without subgroups still validate this one);
//   attention_reduce: combines the partials of each (sequence, head): o = Σ e^(m_s - M) o_s /
//                     Σ e^(m_s - M) l_s, with M the largest m_s.
// Partials are laid out per (b, h, split) as one vec4 (m, l, 0, 0) followed by HD4 vec4s of o.
// Serving (`attention_split_rows`, `attention_groups_rows`, `attention_subgroups_rows`): batch
// row b is qkv row
// row_base + b, and `rows` names its cache sequence and the position of its token,
// (sequence, position): it attends to keys 0..=position of that sequence, so one launch covers
// sequences at ragged depths (kv_len then only sizes the grid). The reduce writes output row
// row_base + b in both cases.
//
// Sliding window (gpt-oss): with `window` > 0 a token with kv_len keys attends to keys
// kv_len - window..kv_len only (all of them while kv_len <= window). The splits cover that range
// and nothing before it is read, so the work and bytes follow the window, not the depth; the
// host sizes n_splits from min(kv_len, window).
// Sinks (gpt-oss, SINKS): one logit per query head, `sinks[h]`, joins the softmax denominator
// and adds no value. It enters once, in the reduce, as one more term of the max and the sum.
//
// K and V are read through the KV format src/kernels/attention.rs prepends
// (shaders/common/kv/read_*.wgsl: `kv_word`, `k_vec4`, `v_vec4`; f32, packed f16 or q8_0
// blocks), unpacked in registers; every sum is f32.

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
    // Keys per query (sliding window); 0: all kv_len keys.
    window: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k_cache: array<kv_word>;
@group(0) @binding(3) var<storage, read> v_cache: array<kv_word>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;

@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> rows: array<vec2<u32>>;
// attention_reduce: n_heads sink logits when SINKS; a dummy otherwise (read only behind SINKS).
@group(0) @binding(7) var<storage, read> sinks: array<f32>;

override WG: u32 = 64u;
override HD4: u32 = 16u;  // head_dim / 4, at most MAX_HD4
// attention_groups only: lanes per key group (min(HD4, WG)), vec4s of the head each lane owns
// (ceil(HD4 / R), GW · NV at most MAX_ACC) and query heads per workgroup (at most MAX_G).
// attention_subgroups takes GW and NV (ceil(HD4 / the adapter's smallest subgroup size), the
// most a lane can own) and NSG, the most subgroups a workgroup holds (WG / the smallest size).
override R: u32 = 16u;
override NV: u32 = 1u;
override GW: u32 = 1u;
override NSG: u32 = 1u;
// attention_reduce only: whether `sinks` holds a sink logit per query head.
override SINKS: bool = false;

const MAX_HD4: u32 = 64u;
const MAX_G: u32 = 8u;
const MAX_ACC: u32 = 16u;
const NEG_BIG: f32 = -3.0e38;

// attention_groups: the workgroup's GW query rows (scaled), later the merge buffer of the key
// groups' outputs; the block's scores, GW × WG; a merging group's (m, l) per head.
var<workgroup> q_sh: array<vec4<f32>, GW * HD4>;
var<workgroup> s_sh: array<f32, GW * WG>;
var<workgroup> ml_sh: array<vec2<f32>, GW>;
var<workgroup> n_keys_sh: u32;

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

// The first key in the window of a token with keys 0..kv_len.
fn window_start(kv_len: u32) -> u32 {
    if (p.window == 0u || kv_len <= p.window) {
        return 0u;
    }
    return kv_len - p.window;
}

// One split of batch row b, head h: q from qkv at q_row4, keys window_start(kv_len)..kv_len of
// cache sequence seq.
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
    let row0 = (seq * p.n_kv_heads + kv_head) * p.cache_len;
    let first = window_start(kv_len) + split * p.split_len;
    let last = min(first + p.split_len, kv_len);
    for (var j = first; j < last; j++) {
        var dot4 = vec4(0.0);
        for (var d = 0u; d < HD4; d++) {
            dot4 = fma(q[d], k_vec4(row0 + j, HD4, d), dot4);
        }
        let s = dot4.x + dot4.y + dot4.z + dot4.w;
        let m_new = max(m, s);
        let corr = exp(m - m_new);
        let pj = exp(s - m_new);
        l = l * corr + pj;
        for (var d = 0u; d < HD4; d++) {
            acc[d] = fma(vec4(pj), v_vec4(row0 + j, HD4, d), acc[d] * corr);
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
fn attention_groups(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.z;
    group_keys(wid.x, wid.y, b, b * p.q_stride4, b, p.kv_len, lid);
}

@compute @workgroup_size(WG, 1, 1)
fn attention_groups_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.z;
    let row = rows[p.row_base + b];
    group_keys(wid.x, wid.y, b, (p.row_base + b) * p.q_stride4, row.x, row.y + 1u, lid);
}

// The query heads workgroup row y of the group layouts takes: KV head y / chunks and heads
// h0 .. h0 + gw of its group (chunk y % chunks of GW heads; the last may be short). Heads h0..
// are adjacent in the q row.
struct Chunk {
    kv_head: u32,
    h0: u32,
    gw: u32,
}

fn head_chunk(y: u32) -> Chunk {
    let group = p.n_heads / p.n_kv_heads;
    let chunks = (group + GW - 1u) / GW;
    let kv_head = y / chunks;
    return Chunk(kv_head, kv_head * group + (y % chunks) * GW, min(GW, group - (y % chunks) * GW));
}

// Stores the chunk's GW query rows, scaled, in q_sh (zero rows past gw: every loop over heads
// runs to GW, a constant the driver can unroll, keeping the per-head arrays in registers; the
// heads past gw score zero q rows and are never written), and returns the keys first..last
// that split `split` takes of a token with kv_len keys, the same in every invocation (read back
// through workgroup memory, as serving reads kv_len from `rows`; also the barrier q_sh needs).
fn load_queries(ch: Chunk, q_row4: u32, split: u32, kv_len: u32, lid: u32) -> vec2<u32> {
    for (var i = lid; i < GW * HD4; i += WG) {
        var q = vec4(0.0);
        if (i < ch.gw * HD4) {
            q = qkv[q_row4 + ch.h0 * HD4 + i] * p.scale;
        }
        q_sh[i] = q;
    }
    if (lid == 0u) {
        n_keys_sh = kv_len;
    }
    let n_keys = workgroupUniformLoad(&n_keys_sh);
    let first = window_start(n_keys) + split * p.split_len;
    return vec2(first, min(first + p.split_len, n_keys));
}

// A lane's online softmax over the keys its owner (key group or subgroup) took, for each head
// g of the chunk: running max m, sum l, and the unnormalised output of the vec4s of the head
// the lane owns (acc[g · NV + i] for vec4 c + i · stride).
struct Running {
    m: array<f32, MAX_G>,
    l: array<f32, MAX_G>,
    acc: array<vec4<f32>, MAX_ACC>,
}

fn running_start() -> Running {
    var r: Running;
    for (var g = 0u; g < GW; g++) {
        r.m[g] = NEG_BIG;
        r.l[g] = 0.0;
    }
    for (var a = 0u; a < GW * NV; a++) {
        r.acc[a] = vec4(0.0);
    }
    return r;
}

// Owner `src` of the lanes hands its running sums to owner 0 through workgroup memory (q_sh,
// free once every owner is done with q), and owner 0 folds them into its own when `present`.
// Every invocation calls it (it holds the barriers). `me`: the lane's owner; the lane owns
// vec4s c, c + stride, ... (nv of them).
fn merge_into_first(
    src: u32,
    present: bool,
    me: u32,
    c: u32,
    stride: u32,
    nv: u32,
    r: ptr<function, Running>,
) {
    if (me == src) {
        for (var g = 0u; g < GW; g++) {
            if (c == 0u) {
                ml_sh[g] = vec2((*r).m[g], (*r).l[g]);
            }
            for (var i = 0u; i < nv; i++) {
                let d = c + i * stride;
                if (d < HD4) {
                    q_sh[g * HD4 + d] = (*r).acc[g * NV + i];
                }
            }
        }
    }
    workgroupBarrier();
    if (me == 0u && present) {
        for (var g = 0u; g < GW; g++) {
            let other = ml_sh[g];
            let m_new = max((*r).m[g], other.x);
            let mine = exp((*r).m[g] - m_new);
            let theirs = exp(other.x - m_new);
            (*r).l[g] = (*r).l[g] * mine + other.y * theirs;
            for (var i = 0u; i < nv; i++) {
                let d = c + i * stride;
                if (d < HD4) {
                    (*r).acc[g * NV + i] = (*r).acc[g * NV + i] * mine + q_sh[g * HD4 + d] * theirs;
                }
            }
            (*r).m[g] = m_new;
        }
    }
    workgroupBarrier();
}

// Owner 0 writes the chunk's partials of split `split`, batch row b (layout as above).
fn store_partials(
    r: ptr<function, Running>,
    ch: Chunk,
    b: u32,
    split: u32,
    c: u32,
    stride: u32,
    nv: u32,
) {
    for (var g = 0u; g < ch.gw; g++) {
        let at = ((b * p.n_heads + ch.h0 + g) * p.n_splits + split) * (HD4 + 1u);
        if (c == 0u) {
            partials[at] = vec4((*r).m[g], (*r).l[g], 0.0, 0.0);
        }
        for (var i = 0u; i < nv; i++) {
            let d = c + i * stride;
            if (d < HD4) {
                partials[at + 1u + d] = (*r).acc[g * NV + i];
            }
        }
    }
}

// One split of batch row b for the query heads of workgroup row y (see `head_chunk`): q from
// qkv at q_row4, keys window_start(kv_len)..kv_len of cache sequence seq.
// Keys go in blocks of WG. Scores: lane i takes key i of the block, a whole row of K against
// every query head (q from workgroup memory: the same address in every lane), so no lane
// reduces across lanes. Values: the lanes form KG = WG / R key groups of R lanes; lane c of a
// group owns vec4s c, c + R, ... of the head (NV of them) for every query head, and takes the
// block's keys kg, kg + KG, ...: one softmax rescale per block, not per key. At the end the key
// groups' (m, l, o) merge through workgroup memory into one partial per head.
fn group_keys(split: u32, y: u32, b: u32, q_row4: u32, seq: u32, kv_len: u32, lid: u32) {
    let ch = head_chunk(y);
    let keys = load_queries(ch, q_row4, split, kv_len, lid);
    let first = keys.x;
    let last = keys.y;
    let kg_count = WG / R;
    let c = lid % R;
    let kg = lid / R;
    let values = kg < kg_count;
    var r = running_start();
    let row0 = (seq * p.n_kv_heads + ch.kv_head) * p.cache_len;
    for (var j0 = first; j0 < last; j0 += WG) {
        let j = j0 + lid;
        var s: array<f32, MAX_G>;
        for (var g = 0u; g < GW; g++) {
            s[g] = 0.0;
        }
        if (j < last) {
            for (var d = 0u; d < HD4; d++) {
                let k = k_vec4(row0 + j, HD4, d);
                for (var g = 0u; g < GW; g++) {
                    s[g] += dot(q_sh[g * HD4 + d], k);
                }
            }
        }
        for (var g = 0u; g < GW; g++) {
            s_sh[g * WG + lid] = s[g];
        }
        workgroupBarrier();
        let n_block = min(WG, last - j0);
        if (values) {
            for (var g = 0u; g < GW; g++) {
                var m_new = r.m[g];
                for (var jj = kg; jj < n_block; jj += kg_count) {
                    m_new = max(m_new, s_sh[g * WG + jj]);
                }
                let corr = exp(r.m[g] - m_new);
                r.l[g] *= corr;
                for (var i = 0u; i < NV; i++) {
                    r.acc[g * NV + i] *= corr;
                }
                r.m[g] = m_new;
            }
            for (var jj = kg; jj < n_block; jj += kg_count) {
                var pj: array<f32, MAX_G>;
                for (var g = 0u; g < GW; g++) {
                    pj[g] = exp(s_sh[g * WG + jj] - r.m[g]);
                    r.l[g] += pj[g];
                }
                for (var i = 0u; i < NV; i++) {
                    let d = c + i * R;
                    if (d < HD4) {
                        let v = v_vec4(row0 + j0 + jj, HD4, d);
                        for (var g = 0u; g < GW; g++) {
                            r.acc[g * NV + i] = fma(vec4(pj[g]), v, r.acc[g * NV + i]);
                        }
                    }
                }
            }
        }
        // The next block overwrites the scores.
        workgroupBarrier();
    }
    // Key group 0 takes in the others one at a time; q_sh is free after the last block's
    // barrier.
    for (var src = 1u; src < kg_count; src++) {
        merge_into_first(src, true, kg, c, R, NV, &r);
    }
    if (kg == 0u) {
        store_partials(&r, ch, b, split, c, R, NV);
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
    // The sink is one more score with no value: in the max (so that a large sink cannot
    // overflow) and in the sum, once per head.
    var m_all = NEG_BIG;
    if (SINKS) {
        m_all = sinks[h];
    }
    for (var s = 0u; s < p.n_splits; s++) {
        m_all = max(m_all, partials[base + s * (HD4 + 1u)].x);
    }
    var l_all = 0.0;
    if (SINKS) {
        l_all = exp(sinks[h] - m_all);
    }
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
