// Router of a mixture-of-experts layer, in one workgroup: for each token, the top-k of its
// expert logits (ties go to the lower expert index) and a softmax over those k; then the
// token-expert assignments grouped by expert, in token order, into blocks of at most BM rows
// for shaders/moe_matmul.wgsl, and the count of experts touched (stats[layer]).
//
// `route` (u32 words), with A = tokens · k assignments and MB = p.max_blocks:
//   [0] blocks, [1] experts touched,
//   [HEADER + b]          expert of block b,   [HEADER + MB + b]  its first sorted row,
//   [HEADER + 2·MB + b]   its rows (1..=BM),
//   [p.assign_at + i]     expert of assignment i = t · k + j,
//   [p.sorted_at + s]     token of sorted row s,
//   [p.slot_at + i]       sorted row of assignment i.
// `gate[i]` is assignment i's weight in the token's output.

struct Params {
    tokens: u32,
    n_experts: u32,
    k: u32,
    ld_logits: u32,
    max_blocks: u32,
    layer: u32,
    assign_at: u32,
    sorted_at: u32,
    slot_at: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> route: array<u32>;
@group(0) @binding(3) var<storage, read_write> gate: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<u32>;

override WG: u32 = 256u;

const HEADER: u32 = 4u;
const BM: u32 = 8u;
const MAX_K: u32 = 16u;
const MAX_E: u32 = 512u;

var<workgroup> counts: array<u32, MAX_E>;
var<workgroup> offsets: array<u32, MAX_E>;

@compute @workgroup_size(WG, 1, 1)
fn moe_route(@builtin(local_invocation_index) lid: u32) {
    let k = p.k;
    let assignments = p.tokens * k;
    // 1. Top-k per token, kept sorted by descending logit; a strictly larger logit is needed to
    //    overtake, so of equal logits the lower expert index ranks first.
    for (var t = lid; t < p.tokens; t += WG) {
        var best_v: array<f32, MAX_K>;
        var best_e: array<u32, MAX_K>;
        for (var j = 0u; j < k; j++) {
            best_v[j] = -3.0e38;
            best_e[j] = 0u;
        }
        for (var e = 0u; e < p.n_experts; e++) {
            let v = logits[t * p.ld_logits + e];
            if (v > best_v[k - 1u]) {
                var j = k - 1u;
                loop {
                    if (j == 0u || !(v > best_v[j - 1u])) {
                        break;
                    }
                    best_v[j] = best_v[j - 1u];
                    best_e[j] = best_e[j - 1u];
                    j -= 1u;
                }
                best_v[j] = v;
                best_e[j] = e;
            }
        }
        var sum = 0.0;
        for (var j = 0u; j < k; j++) {
            sum += exp(best_v[j] - best_v[0]);
        }
        for (var j = 0u; j < k; j++) {
            gate[t * k + j] = exp(best_v[j] - best_v[0]) / sum;
            route[p.assign_at + t * k + j] = best_e[j];
        }
    }
    storageBarrier();
    workgroupBarrier();
    // 2. Assignments per expert.
    for (var e = lid; e < p.n_experts; e += WG) {
        var c = 0u;
        for (var i = 0u; i < assignments; i++) {
            c += select(0u, 1u, route[p.assign_at + i] == e);
        }
        counts[e] = c;
    }
    workgroupBarrier();
    // 3. Offsets and blocks: one invocation, E steps (a few microseconds on a GPU).
    if (lid == 0u) {
        var off = 0u;
        var blocks = 0u;
        var touched = 0u;
        for (var e = 0u; e < p.n_experts; e++) {
            offsets[e] = off;
            let c = counts[e];
            if (c > 0u) {
                touched += 1u;
            }
            for (var s = 0u; s < c; s += BM) {
                route[HEADER + blocks] = e;
                route[HEADER + p.max_blocks + blocks] = off + s;
                route[HEADER + 2u * p.max_blocks + blocks] = min(BM, c - s);
                blocks += 1u;
            }
            off += c;
        }
        route[0] = blocks;
        route[1] = touched;
        stats[p.layer] = touched;
    }
    workgroupBarrier();
    // 4. Sorted rows, each expert's in token order.
    for (var e = lid; e < p.n_experts; e += WG) {
        var s = offsets[e];
        for (var i = 0u; i < assignments; i++) {
            if (route[p.assign_at + i] == e) {
                route[p.sorted_at + s] = i / k;
                route[p.slot_at + i] = s;
                s += 1u;
            }
        }
    }
}
