// Causal grouped-query attention for prefill on cooperative matrices, FlashAttention-2 layout:
// a workgroup per block of BQ = D queries of one head of one sequence; K and V stream through
// workgroup memory BK = D keys at a time; q·kᵀ and p·V are D × D matrix multiply-accumulates
// (f16 inputs, f32 accumulate), the online softmax runs in f32, one invocation per query row.
// The same Params, bindings and cache layout as attention_prefill.wgsl: q from the rotated `qkv`
// rows, K and V from [batch, kv_head, cache_len, head_dim], query head h reads kv head
// h / (n_heads / n_kv_heads); output row of token t is [head 0 | head 1 | ...].
//
// src/kernels/attention_coop.rs prepends D and the coop_a / coop_b / coop_c aliases (see
// matmul_coop.wgsl, which also says why the prelude turns naga's derivative_uniformity rule off:
// subgroup 0 alone does the matrix work, a subgroup-uniform choice naga cannot see). The output
// accumulator O (BQ × head_dim, f32) lives in workgroup memory: each key block rescales its rows
// by the softmax correction, then adds P · V through cooperative loads and stores.
//
// Per key block: stage K, V (f32 → f16) | S = Q · Kᵀ | per row: running max, P = exp(S − max)
// (0 past the causal edge and before the row's window), rescale O's row | O += P · V. Barriers
// separate the steps.
//
// Sliding window and sinks as in attention_prefill.wgsl: with `window` > 0 the query at
// position pos attends to keys pos + 1 - window ..= pos; key blocks start at the window of the
// block's first query (blocks before every row's window are never loaded). With SINKS,
// `sinks[h]` joins each row's softmax denominator and adds no value.
//
// K and V are read through the KV format src/kernels/attention_coop.rs prepends after the
// matrix prelude (shaders/common/kv/read_*.wgsl: f32, packed f16 or q8_0 blocks), unpacked to
// f32 in registers and staged as f16 like the f32 cache.

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
// n_heads sink logits when SINKS; a dummy otherwise (read only behind SINKS).
@group(0) @binding(6) var<storage, read> sinks: array<f32>;

override SG: u32 = 8u;   // the adapter's largest subgroup size: the workgroup size (>= D)
override HD: u32 = 64u;  // head_dim: a multiple of D, at most 2048 / D
override SINKS: bool = false;  // whether `sinks` holds a sink logit per query head

const BQ: u32 = D;
const BK: u32 = D;
const NEG_BIG: f32 = -3.0e38;

var<workgroup> q_tile: array<f16, 2048>;  // BQ × HD, row-major, scaled by 1/√head_dim
var<workgroup> k_tile: array<f16, 2048>;  // BK × HD: Kᵀ column-major
var<workgroup> v_tile: array<f16, 2048>;  // BK × HD, row-major
var<workgroup> o_tile: array<f32, 2048>;  // BQ × HD, row-major
var<workgroup> s_tile: array<f32, D * D>; // BQ × BK scores
var<workgroup> p_tile: array<f16, D * D>; // BQ × BK probabilities
var<workgroup> l_tile: array<f32, D>;     // per row: the factor that normalises its output

// The first key in the window of the query at position n_keys - 1.
fn window_start(n_keys: u32) -> u32 {
    if (p.window == 0u || n_keys <= p.window) {
        return 0u;
    }
    return n_keys - p.window;
}

@compute @workgroup_size(SG, 1, 1)
fn attention_prefill_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) sg_id: u32,
) {
    let q0 = wid.x * BQ;  // first query position of the block in its sequence
    let h = wid.y;
    let b = wid.z;
    let rows = min(BQ, p.seq_len - q0);
    let kv_head = h / (p.n_heads / p.n_kv_heads);
    let hd4 = HD / 4u;
    let owner = sg_id == 0u;
    let row0 = b * p.seq_len + q0;  // token index of the block's first query

    for (var l = li; l < BQ * hd4; l += SG) {
        let r = l / hd4;
        let d4 = l % hd4;
        var v = vec4<f32>(0.0);
        if (r < rows) {
            v = qkv[(row0 + r) * p.qkv_stride4 + h * hd4 + d4] * p.scale;
        }
        let hv = vec4<f16>(v);
        let o = r * HD + d4 * 4u;
        q_tile[o] = hv.x;
        q_tile[o + 1u] = hv.y;
        q_tile[o + 2u] = hv.z;
        q_tile[o + 3u] = hv.w;
        o_tile[o] = 0.0;
        o_tile[o + 1u] = 0.0;
        o_tile[o + 2u] = 0.0;
        o_tile[o + 3u] = 0.0;
    }
    var m = NEG_BIG;  // running max of this invocation's row (li < BQ)
    var l_sum = 0.0;
    let kv_row0 = (b * p.n_kv_heads + kv_head) * p.cache_len;
    let n_keys = q0 + rows;  // keys the block's last query sees
    // This invocation's row attends to keys lo..=qpos; the block to keys from its first row's lo.
    let qpos = q0 + li;
    let lo = window_start(qpos + 1u);
    for (var j0 = window_start(q0 + 1u); j0 < n_keys; j0 += BK) {
        // The previous block's reads of k_tile, v_tile, p_tile and o_tile are done.
        workgroupBarrier();
        for (var l = li; l < BK * hd4; l += SG) {
            let r = l / hd4;
            let d4 = l % hd4;
            var kv = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if (j0 + r < n_keys) {
                kv = k_vec4(kv_row0 + j0 + r, hd4, d4);
                vv = v_vec4(kv_row0 + j0 + r, hd4, d4);
            }
            let kh = vec4<f16>(kv);
            let vh = vec4<f16>(vv);
            let o = r * HD + d4 * 4u;
            k_tile[o] = kh.x;
            k_tile[o + 1u] = kh.y;
            k_tile[o + 2u] = kh.z;
            k_tile[o + 3u] = kh.w;
            v_tile[o] = vh.x;
            v_tile[o + 1u] = vh.y;
            v_tile[o + 2u] = vh.z;
            v_tile[o + 3u] = vh.w;
        }
        workgroupBarrier();
        if (owner) {
            var s = coop_c();
            for (var kd = 0u; kd < HD; kd += D) {
                let qa = coopLoadT<coop_a>(&q_tile[kd], HD);
                let kb = coopLoad<coop_b>(&k_tile[kd], HD);
                s = coopMultiplyAdd(qa, kb, s);
            }
            // Operands as `let`s: naga 30 does not emit a coopStore's own operand expressions.
            let sv = s;
            let dst = &s_tile[0];
            coopStoreT(sv, dst, BK);
        }
        workgroupBarrier();
        if (li < BQ) {
            var m_new = m;
            for (var jj = 0u; jj < BK; jj++) {
                if (li < rows && j0 + jj <= qpos && j0 + jj >= lo) {
                    m_new = max(m_new, s_tile[li * BK + jj]);
                }
            }
            let alpha = exp(m - m_new);
            var sum = 0.0;
            for (var jj = 0u; jj < BK; jj++) {
                var pj = 0.0;
                if (li < rows && j0 + jj <= qpos && j0 + jj >= lo) {
                    pj = exp(s_tile[li * BK + jj] - m_new);
                }
                sum += pj;
                p_tile[li * BK + jj] = f16(pj);
            }
            l_sum = l_sum * alpha + sum;
            m = m_new;
            for (var d = 0u; d < HD; d++) {
                o_tile[li * HD + d] *= alpha;
            }
        }
        workgroupBarrier();
        if (owner) {
            let pa = coopLoadT<coop_a>(&p_tile[0], BK);
            for (var cb = 0u; cb < HD; cb += D) {
                var o = coopLoadT<coop_c>(&o_tile[cb], HD);
                let vb = coopLoadT<coop_b>(&v_tile[cb], HD);
                o = coopMultiplyAdd(pa, vb, o);
                let ov = o;
                let dst = &o_tile[cb];
                coopStoreT(ov, dst, HD);
            }
        }
    }
    if (li < BQ) {
        // 1 / l, or with a sink 1 / (l + e^(sink - m)), about max(m, sink) so it cannot
        // overflow.
        var norm = 1.0 / l_sum;
        if (SINKS) {
            let sink = sinks[h];
            let m_all = max(m, sink);
            let corr = exp(m - m_all);
            norm = corr / (l_sum * corr + exp(sink - m_all));
        }
        l_tile[li] = norm;
    }
    workgroupBarrier();
    for (var l = li; l < rows * hd4; l += SG) {
        let r = l / hd4;
        let d4 = l % hd4;
        let o = r * HD + d4 * 4u;
        let v = vec4<f32>(o_tile[o], o_tile[o + 1u], o_tile[o + 2u], o_tile[o + 3u]);
        out[(row0 + r) * p.n_heads * hd4 + h * hd4 + d4] = v * l_tile[r];
    }
}
