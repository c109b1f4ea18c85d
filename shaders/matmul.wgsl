// C = A · W (+ C) with f32 activations A and weights W of type `wvec4` (vec4<f32> or vec4<f16>,
// set by the prelude src/kernels prepends). Row-major throughout.
//
// Layout, prepared by src/kernels: rows are padded with zeros to whole vec4s. A is read at
// `a_off4 + row * lda4` (so a stride can skip rows: the LM head reads the last token of each
// prompt). W is one dense column slab of a weight, (4 * k4) rows × n4 vec4 columns, its padding
// rows zero. The slab's output lands at column `c_off4` of C, whose rows are `ldc4` vec4s apart:
// a weight too large for one binding is split into slabs written side by side. With
// `accumulate` set the product is added to C (the residual connection, fused).
// Rows past M are clamped for loads and skipped on store, so any M, N, K (M = 1 too) works and
// every access stays in bounds.
//
// Register tiling: each invocation computes TM rows × TN vec4 columns, loading A as a vec4 along
// K and four vec4 rows of W per step. No workgroup memory and no barriers: on CPU Vulkan
// drivers (lavapipe) invocations are SIMD lanes and barriers are expensive.

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

override WG_X: u32 = 8u;  // invocations along N
override WG_Y: u32 = 8u;  // invocations along M
override TM: u32 = 4u;    // rows per invocation, 1..=MAX_TM
override TN: u32 = 1u;    // vec4 columns per invocation, 1..=MAX_TN

const MAX_TM: u32 = 8u;
const MAX_TN: u32 = 4u;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col0 = gid.x * TN;
    let row0 = gid.y * TM;
    if (col0 >= p.n4 || row0 >= p.m) {
        return;
    }
    let n4 = p.n4;
    var a_row: array<u32, MAX_TM>;
    for (var i = 0u; i < TM; i++) {
        a_row[i] = p.a_off4 + min(row0 + i, p.m - 1u) * p.lda4;
    }
    var w_col: array<u32, MAX_TN>;
    for (var j = 0u; j < TN; j++) {
        w_col[j] = min(col0 + j, n4 - 1u);
    }
    var acc: array<vec4<f32>, 32>;  // MAX_TM * MAX_TN, zero-initialised
    var av: array<vec4<f32>, MAX_TM>;
    for (var kk = 0u; kk < p.k4; kk++) {
        for (var i = 0u; i < TM; i++) {
            av[i] = a[a_row[i] + kk];
        }
        let w_row = 4u * kk * n4;
        for (var j = 0u; j < TN; j++) {
            let w0 = vec4<f32>(w[w_row + w_col[j]]);
            let w1 = vec4<f32>(w[w_row + n4 + w_col[j]]);
            let w2 = vec4<f32>(w[w_row + 2u * n4 + w_col[j]]);
            let w3 = vec4<f32>(w[w_row + 3u * n4 + w_col[j]]);
            for (var i = 0u; i < TM; i++) {
                let t = i * MAX_TN + j;
                acc[t] = fma(vec4(av[i].x), w0, acc[t]);
                acc[t] = fma(vec4(av[i].y), w1, acc[t]);
                acc[t] = fma(vec4(av[i].z), w2, acc[t]);
                acc[t] = fma(vec4(av[i].w), w3, acc[t]);
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let row = row0 + i;
        if (row < p.m) {
            for (var j = 0u; j < TN; j++) {
                if (col0 + j < n4) {
                    let idx = row * p.ldc4 + p.c_off4 + col0 + j;
                    var v = acc[i * MAX_TN + j];
                    if (p.accumulate != 0u) {
                        v += c[idx];
                    }
                    c[idx] = v;
                }
            }
        }
    }
}
