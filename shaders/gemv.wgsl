// Skinny C = A · W (+ C) for M <= 8 rows of A (decode: one row per sequence), f32 activations,
// weights of type `wvec4` (set by the prelude). Same Params and layout as matmul.wgsl: the two
// kernels share weight slabs, so prefill and decode stream the very same bytes.
//
// Each invocation owns one vec4 column of the slab and keeps all M rows' sums in registers
// (M is an override constant, so the row loops unroll): every weight byte is read exactly once.

struct Params {
    m: u32,
    k4: u32,
    n4: u32,
    lda4: u32,
    a_off4: u32,
    ldc4: u32,
    c_off4: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<wvec4>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

override WG: u32 = 64u;  // invocations per workgroup
override M: u32 = 1u;    // rows of A, 1..=MAX_M; must equal p.m

const MAX_M: u32 = 8u;

@compute @workgroup_size(WG, 1, 1)
fn gemv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.n4) {
        return;
    }
    let n4 = p.n4;
    var acc: array<vec4<f32>, MAX_M>;
    for (var kk = 0u; kk < p.k4; kk++) {
        let w_row = 4u * kk * n4 + col;
        let w0 = vec4<f32>(w[w_row]);
        let w1 = vec4<f32>(w[w_row + n4]);
        let w2 = vec4<f32>(w[w_row + 2u * n4]);
        let w3 = vec4<f32>(w[w_row + 3u * n4]);
        for (var r = 0u; r < M; r++) {
            let av = a[p.a_off4 + r * p.lda4 + kk];
            acc[r] = fma(vec4(av.x), w0, acc[r]);
            acc[r] = fma(vec4(av.y), w1, acc[r]);
            acc[r] = fma(vec4(av.z), w2, acc[r]);
            acc[r] = fma(vec4(av.w), w3, acc[r]);
        }
    }
    for (var r = 0u; r < M; r++) {
        let idx = r * p.ldc4 + p.c_off4 + col;
        var v = acc[r];
        if (p.accumulate != 0u) {
            v += c[idx];
        }
        c[idx] = v;
    }
}
