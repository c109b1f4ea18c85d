// Per-head products of multi-head latent attention (MLA, DeepSeek-V2/V3), absorbed form: each
// of `g.heads` heads has its own matrix, and C[r, head h] (+)= A[r, head h] · W_hᵀ for every row
// r. Absorbing W_UK into the query (q_lat = q_nope · W_UK,h) and W_UV into the output
// (o_h = o_lat · W_UV,h) is what lets decode attend over the cached latent directly.
// Row r of head h's input starts at vec4 `p.a_off4 + r · p.lda4 + h · g.a_head4` (K = 4 · p.k4
// of it are read); output j of head h, row r, is float `r · p.ldc + p.c_off + h · g.c_head + j`.
// W holds, from row `g.w_row_off` on, `g.w_head_rows` rows per head, of which the head's first
// `p.n` are its outputs, each a row of K weights in the format's layout (so W_UV is read
// straight out of W_kv_b's rows, its value rows after each head's key rows).

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

struct HeadGroup {
    heads: u32,
    a_head4: u32,
    c_head: u32,
    w_head_rows: u32,
    w_row_off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(4) var<uniform> g: HeadGroup;

override WG: u32 = 64u;

// Rows per invocation: each weight row is streamed once for up to BM rows of A.
const BM: u32 = 8u;

// One invocation per (output j, head h, block of BM rows): the register tier of gemv.wgsl.
@compute @workgroup_size(WG, 1, 1)
fn head_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let j = gid.x;
    let h = wid.y;
    let r0 = wid.z * BM;
    if (j >= p.n || h >= g.heads || r0 >= p.m) {
        return;
    }
    let rows = min(BM, p.m - r0);
    let a0 = p.a_off4 + r0 * p.lda4 + h * g.a_head4;
    let base = w_base(g.w_row_off + h * g.w_head_rows + j);
    if (rows == 1u) {
        // Decode at batch 1: one accumulator, in registers (see row_dot).
        store(r0 * p.ldc + p.c_off + h * g.c_head + j, row_dot(base, a0));
        return;
    }
    var acc: array<vec4<f32>, BM>;
    // Past K a block's weights are zero (block formats pad K to 32); A's index is clamped so it
    // stays inside the head's own slice.
    for (var blk = 0u; blk * WB < p.k4; blk++) {
        let wb = w_block(base, blk);
        for (var i = 0u; i < WB; i++) {
            let kk = min(blk * WB + i, p.k4 - 1u);
            for (var r = 0u; r < rows; r++) {
                acc[r] = fma(a[a0 + r * p.lda4 + kk], wb[i], acc[r]);
            }
        }
    }
    for (var r = 0u; r < rows; r++) {
        store((r0 + r) * p.ldc + p.c_off + h * g.c_head + j, dot(acc[r], vec4(1.0)));
    }
}

fn store(at: u32, v: f32) {
    if (p.accumulate != 0u) {
        c[at] = c[at] + v;
    } else {
        c[at] = v;
    }
}
