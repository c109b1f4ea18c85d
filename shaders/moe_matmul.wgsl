// The expert products of a mixture-of-experts layer: for each block of shaders/moe_route.wgsl
// (up to BM sorted rows of one expert), C[rows] = A[rows] · W_eᵀ, so each expert's weights are
// read once per block and an expert no token chose is never read. W holds `g.experts`
// experts' matrices from expert `g.first_expert` on, each `p.n` rows (outputs) of K = 4 · p.k4
// in the format's layout (a binding holds a slab of experts; blocks of other experts return).
// A row of sorted row s is `route[g.sorted_at + s]` (the token, gathering the layer input) when
// `g.gather` is 1, else s itself (the expert's own hidden rows). C row s starts at float
// s · p.ldc; it is overwritten.

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

struct Group {
    first_expert: u32,
    experts: u32,
    max_blocks: u32,
    gather: u32,
    sorted_at: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(4) var<storage, read> route: array<u32>;
@group(0) @binding(5) var<uniform> g: Group;

override WG: u32 = 64u;

const HEADER: u32 = 4u;
const BM: u32 = 8u;

// One invocation per output of one block, streaming that output's weight row along K once for
// all the block's rows (the register tier of gemv.wgsl, rows gathered).
@compute @workgroup_size(WG, 1, 1)
fn moe_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n = gid.x;
    let b = wid.y;
    if (b >= route[0] || n >= p.n) {
        return;
    }
    let e = route[HEADER + b];
    if (e < g.first_expert || e >= g.first_expert + g.experts) {
        return;
    }
    let start = route[HEADER + g.max_blocks + b];
    let rows = route[HEADER + 2u * g.max_blocks + b];
    let base = w_base((e - g.first_expert) * p.n + n);
    if (rows == 1u) {
        // A decode batch's token alone on its expert, the common case: one accumulator.
        let a0 = select(start, route[g.sorted_at + start], g.gather != 0u) * p.lda4;
        c[start * p.ldc + n] = row_dot(base, a0);
        return;
    }
    var a_row: array<u32, BM>;
    for (var r = 0u; r < rows; r++) {
        let s = start + r;
        a_row[r] = select(s, route[g.sorted_at + s], g.gather != 0u) * p.lda4;
    }
    var acc: array<vec4<f32>, BM>;
    // Past K a block's weights are zero (block formats pad K to 32); A's index is clamped.
    for (var blk = 0u; blk * WB < p.k4; blk++) {
        let wb = w_block(base, blk);
        for (var i = 0u; i < WB; i++) {
            let kk = min(blk * WB + i, p.k4 - 1u);
            for (var r = 0u; r < rows; r++) {
                acc[r] = fma(a[a_row[r] + kk], wb[i], acc[r]);
            }
        }
    }
    for (var r = 0u; r < rows; r++) {
        c[(start + r) * p.ldc + n] = dot(acc[r], vec4(1.0));
    }
}
