// C (+)= A · Wᵀ, the GPU tier: the same products, layout and Params as matmul.wgsl (W one output
// per row, K contiguous), tiled through workgroup memory.
//
// A workgroup computes a BM × BN tile of C with (BN / TN) × (BM / TM) invocations, each a TM × TN
// block in registers. K advances BK at a time: each step the workgroup loads a BM × BK tile of A
// and a BN × BK tile of W (both K-contiguous, so neighbouring invocations read neighbouring
// addresses), stores them transposed (k-major) with a padded row so reads do not collide on
// banks, and the loads of the next step are issued before this step's arithmetic (prefetch into
// registers). Loads past M, N or K read zeros or clamp; stores past M or N are skipped.

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

override TM: u32 = 4u;   // rows per invocation (<= 4)
override TN: u32 = 4u;   // outputs per invocation (<= 4)
override BM: u32 = 64u;  // tile rows; BM / TM invocations along y
override BN: u32 = 64u;  // tile outputs; BN / TN invocations along x
const BK4: u32 = 4u;     // K step in vec4s (16 values)
const BK: u32 = 16u;
const MAX_BM: u32 = 128u;
const MAX_BN: u32 = 128u;
const PAD: u32 = 4u;     // padding of each k row of the tiles
const MAX_LOADS: u32 = 8u; // vec4 loads per invocation per tile, for either tile

var<workgroup> a_tile: array<f32, 2112>;  // BK * (MAX_BM + PAD)
var<workgroup> w_tile: array<f32, 2112>;  // BK * (MAX_BN + PAD)

@compute @workgroup_size(BN / TN, BM / TM, 1)
fn matmul_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let threads = (BN / TN) * (BM / TM);
    let row_base = wid.y * BM;
    let col_base = wid.x * BN;
    // Loads of one tile: BM (or BN) rows × BK4 vec4s, spread over the invocations.
    let a_loads = (BM * BK4 + threads - 1u) / threads;
    let w_loads = (BN * BK4 + threads - 1u) / threads;
    var a_next: array<vec4<f32>, MAX_LOADS>;
    var w_next: array<vec4<f32>, MAX_LOADS>;
    var acc: array<f32, 16>;

    for (var k0 = 0u; k0 < p.k4; k0 += BK4) {
        // Fetch this step's tiles into registers (for k0 = 0; later steps were prefetched).
        if (k0 == 0u) {
            for (var l = 0u; l < a_loads; l++) {
                a_next[l] = load_a(li + l * threads, row_base, k0);
            }
            for (var l = 0u; l < w_loads; l++) {
                w_next[l] = load_w(li + l * threads, col_base, k0);
            }
        }
        workgroupBarrier();
        for (var l = 0u; l < a_loads; l++) {
            store_tile_a(li + l * threads, a_next[l]);
        }
        for (var l = 0u; l < w_loads; l++) {
            store_tile_w(li + l * threads, w_next[l]);
        }
        workgroupBarrier();
        // Prefetch the next step while this one computes.
        if (k0 + BK4 < p.k4) {
            for (var l = 0u; l < a_loads; l++) {
                a_next[l] = load_a(li + l * threads, row_base, k0 + BK4);
            }
            for (var l = 0u; l < w_loads; l++) {
                w_next[l] = load_w(li + l * threads, col_base, k0 + BK4);
            }
        }
        for (var kk = 0u; kk < BK; kk++) {
            var af: array<f32, 4>;
            var wf: array<f32, 4>;
            for (var i = 0u; i < TM; i++) {
                af[i] = a_tile[kk * (MAX_BM + PAD) + lid.y * TM + i];
            }
            for (var j = 0u; j < TN; j++) {
                wf[j] = w_tile[kk * (MAX_BN + PAD) + lid.x * TN + j];
            }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) {
                    acc[i * 4u + j] = fma(af[i], wf[j], acc[i * 4u + j]);
                }
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let row = row_base + lid.y * TM + i;
        for (var j = 0u; j < TN; j++) {
            let col = col_base + lid.x * TN + j;
            if (row < p.m && col < p.n) {
                let idx = row * p.ldc + p.c_off + col;
                var v = acc[i * 4u + j];
                if (p.accumulate != 0u) {
                    v += c[idx];
                }
                c[idx] = v;
            }
        }
    }
}

// Element `e` of a BM × BK4 tile of A starting at row `row_base`, vec4 column `k0`.
fn load_a(e: u32, row_base: u32, k0: u32) -> vec4<f32> {
    let r = e / BK4;
    let kk = k0 + e % BK4;
    if (r >= BM || kk >= p.k4) {
        return vec4(0.0);
    }
    let row = min(row_base + r, p.m - 1u);
    return a[p.a_off4 + row * p.lda4 + kk];
}

fn load_w(e: u32, col_base: u32, k0: u32) -> vec4<f32> {
    let r = e / BK4;
    let kk = k0 + e % BK4;
    if (r >= BN || kk >= p.k4) {
        return vec4(0.0);
    }
    let n = min(col_base + r, p.n - 1u);
    return w_vec4(w_base(n), kk);
}

fn store_tile_a(e: u32, v: vec4<f32>) {
    let r = e / BK4;
    if (r >= BM) {
        return;
    }
    let k = (e % BK4) * 4u;
    a_tile[(k + 0u) * (MAX_BM + PAD) + r] = v.x;
    a_tile[(k + 1u) * (MAX_BM + PAD) + r] = v.y;
    a_tile[(k + 2u) * (MAX_BM + PAD) + r] = v.z;
    a_tile[(k + 3u) * (MAX_BM + PAD) + r] = v.w;
}

fn store_tile_w(e: u32, v: vec4<f32>) {
    let r = e / BK4;
    if (r >= BN) {
        return;
    }
    let k = (e % BK4) * 4u;
    w_tile[(k + 0u) * (MAX_BN + PAD) + r] = v.x;
    w_tile[(k + 1u) * (MAX_BN + PAD) + r] = v.y;
    w_tile[(k + 2u) * (MAX_BN + PAD) + r] = v.z;
    w_tile[(k + 3u) * (MAX_BN + PAD) + r] = v.w;
}
