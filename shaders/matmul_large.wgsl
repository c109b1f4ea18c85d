// C (+)= A · Wᵀ for big GPUs: the same products, layout and Params as matmul.wgsl (W one output
// per row, K contiguous), in large workgroup tiles.
//
// A workgroup computes a BM × BN tile of C with (BN / TN) × (BM / TM) invocations, each a TM × TN
// block of vec4 accumulators (TM, TN 4 or 8: up to 64 outputs, 8 workgroup-memory vec4 loads
// per 64 FMAs at 8 × 8). K advances BK at a time through two workgroup buffers (double
// buffering): while the workgroup computes on one, each invocation has already issued the global
// loads of the next step into registers and stores them into the other, so a step costs one
// barrier. Tiles are stored k-major as vec4s of M (or N); an invocation's rows are TM / 4 vec4s
// BM / TM apart, so the invocations of a subgroup read neighbouring vec4s. Every group of four k
// rows carries 32 / BK4 floats of padding: the transposed stores of a subgroup (32 / BK4 rows ×
// BK4 vec4s of K) then fall on 32 distinct banks of 4 bytes.
//
// Split-K: with Z workgroups along z, workgroup z takes the z-th of Z equal runs of K steps and
// writes its partial sums as rows z·m .. z·m + m − 1 of C (then a scratch buffer whose rows are
// `ldc` floats); `matmul_large_reduce` adds the Z partials into the real C.
//
// Loads past M clamp, past K (or the slice's end) read zeros; stores past M or N are skipped.

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

override BM: u32 = 128u; // tile rows (a multiple of 4 · (BM / TM))
override BN: u32 = 128u; // tile outputs
override BK: u32 = 16u;  // K per step: 4, 8, 16 or 32
override TM: u32 = 8u;   // rows per invocation: 4 or 8
override TN: u32 = 8u;   // outputs per invocation: 4 or 8
const MAX_LOADS: u32 = 8u; // vec4 loads per invocation per tile, for either tile

// One buffer of each tile in vec4s: BK rows of BM / 4 (BN / 4), plus 8 vec4s of padding in all
// (32 / BK4 floats after each group of four rows). src/kernels/matmul.rs computes the same sizes.
var<workgroup> a_tile: array<vec4<f32>, 2u * (BK * BM / 4u + 8u)>;
var<workgroup> w_tile: array<vec4<f32>, 2u * (BK * BN / 4u + 8u)>;

// Where row kk of a tile starts, in vec4s (`cols4`: BM / 4 or BN / 4).
fn tile_row(kk: u32, cols4: u32) -> u32 {
    return kk * cols4 + (kk >> 2u) * (32u / BK);
}

@compute @workgroup_size(BN / TN, BM / TM, 1)
fn matmul_large(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tx = BN / TN;
    let ty = BM / TM;
    let threads = tx * ty;
    let bk4 = BK / 4u;
    let row_base = wid.y * BM;
    let col_base = wid.x * BN;
    let a_size = BK * BM / 4u + 8u;
    let w_size = BK * BN / 4u + 8u;
    let a_loads = (BM * bk4 + threads - 1u) / threads;
    let w_loads = (BN * bk4 + threads - 1u) / threads;
    // This workgroup's run of K steps (all of them without split-K).
    let steps = (p.k4 + bk4 - 1u) / bk4;
    let per_slice = (steps + nwg.z - 1u) / nwg.z;
    let s_begin = min(wid.z * per_slice, steps);
    let s_end = min(s_begin + per_slice, steps);
    let k_end = min(s_end * bk4, p.k4);

    var a_next: array<vec4<f32>, MAX_LOADS>;
    var w_next: array<vec4<f32>, MAX_LOADS>;
    var acc: array<vec4<f32>, 16>; // [i][j4]: row i (0..TM), vec4 j4 (0..TN / 4) of outputs

    if (s_begin < s_end) {
        for (var l = 0u; l < a_loads; l++) {
            store_a(0u, li + l * threads, load_a(li + l * threads, row_base, s_begin * bk4, k_end));
        }
        for (var l = 0u; l < w_loads; l++) {
            store_w(0u, li + l * threads, load_w(li + l * threads, col_base, s_begin * bk4, k_end));
        }
    }
    workgroupBarrier();
    for (var s = s_begin; s < s_end; s++) {
        let cur = (s - s_begin) & 1u;
        let more = s + 1u < s_end;
        // Issue the next step's global loads before this step's arithmetic.
        if (more) {
            for (var l = 0u; l < a_loads; l++) {
                a_next[l] = load_a(li + l * threads, row_base, (s + 1u) * bk4, k_end);
            }
            for (var l = 0u; l < w_loads; l++) {
                w_next[l] = load_w(li + l * threads, col_base, (s + 1u) * bk4, k_end);
            }
        }
        let a0 = cur * a_size;
        let w0 = cur * w_size;
        for (var kk = 0u; kk < BK; kk++) {
            let ar = a0 + tile_row(kk, BM / 4u) + lid.y;
            let wr = w0 + tile_row(kk, BN / 4u) + lid.x;
            var af: array<vec4<f32>, 2>;
            var wf: array<vec4<f32>, 2>;
            for (var i4 = 0u; i4 < TM / 4u; i4++) {
                af[i4] = a_tile[ar + i4 * ty];
            }
            for (var j4 = 0u; j4 < TN / 4u; j4++) {
                wf[j4] = w_tile[wr + j4 * tx];
            }
            for (var i = 0u; i < TM; i++) {
                let av = vec4<f32>(af[i >> 2u][i & 3u]);
                for (var j4 = 0u; j4 < TN / 4u; j4++) {
                    acc[i * 2u + j4] = fma(av, wf[j4], acc[i * 2u + j4]);
                }
            }
        }
        if (more) {
            for (var l = 0u; l < a_loads; l++) {
                store_a(cur ^ 1u, li + l * threads, a_next[l]);
            }
            for (var l = 0u; l < w_loads; l++) {
                store_w(cur ^ 1u, li + l * threads, w_next[l]);
            }
        }
        workgroupBarrier();
    }

    // Partial sums of slice z go to rows z·m.. of C (z = 0 without split-K).
    let out_row0 = wid.z * p.m;
    for (var i = 0u; i < TM; i++) {
        let row = row_base + ((i >> 2u) * ty + lid.y) * 4u + (i & 3u);
        if (row >= p.m) {
            continue;
        }
        for (var j4 = 0u; j4 < TN / 4u; j4++) {
            let col4 = col_base / 4u + j4 * tx + lid.x;
            let v = acc[i * 2u + j4];
            for (var jj = 0u; jj < 4u; jj++) {
                let col = col4 * 4u + jj;
                if (col < p.n) {
                    let idx = (out_row0 + row) * p.ldc + p.c_off + col;
                    var x = v[jj];
                    if (p.accumulate != 0u) {
                        x += c[idx];
                    }
                    c[idx] = x;
                }
            }
        }
    }
}

// Element `e` of a BM × BK4 tile of A (row e / BK4, vec4 e % BK4 of K from `k0`).
fn load_a(e: u32, row_base: u32, k0: u32, k_end: u32) -> vec4<f32> {
    let bk4 = BK / 4u;
    let r = e / bk4;
    let kk = k0 + e % bk4;
    if (r >= BM || kk >= k_end) {
        return vec4(0.0);
    }
    let row = min(row_base + r, p.m - 1u);
    return a[p.a_off4 + row * p.lda4 + kk];
}

fn load_w(e: u32, col_base: u32, k0: u32, k_end: u32) -> vec4<f32> {
    let bk4 = BK / 4u;
    let r = e / bk4;
    let kk = k0 + e % bk4;
    if (r >= BN || kk >= k_end) {
        return vec4(0.0);
    }
    let n = min(col_base + r, p.n - 1u);
    return w_vec4(w_base(n), kk);
}

// Element `e`'s four values of K, stored transposed into buffer `buf`: rows 4·(e % BK4) + 0..3,
// float e / BK4 of each.
fn store_a(buf: u32, e: u32, v: vec4<f32>) {
    let bk4 = BK / 4u;
    let r = e / bk4;
    if (r >= BM) {
        return;
    }
    let k = (e % bk4) * 4u;
    let base = buf * (BK * BM / 4u + 8u) + r / 4u;
    let comp = r & 3u;
    a_tile[base + tile_row(k, BM / 4u)][comp] = v.x;
    a_tile[base + tile_row(k + 1u, BM / 4u)][comp] = v.y;
    a_tile[base + tile_row(k + 2u, BM / 4u)][comp] = v.z;
    a_tile[base + tile_row(k + 3u, BM / 4u)][comp] = v.w;
}

fn store_w(buf: u32, e: u32, v: vec4<f32>) {
    let bk4 = BK / 4u;
    let r = e / bk4;
    if (r >= BN) {
        return;
    }
    let k = (e % bk4) * 4u;
    let base = buf * (BK * BN / 4u + 8u) + r / 4u;
    let comp = r & 3u;
    w_tile[base + tile_row(k, BN / 4u)][comp] = v.x;
    w_tile[base + tile_row(k + 1u, BN / 4u)][comp] = v.y;
    w_tile[base + tile_row(k + 2u, BN / 4u)][comp] = v.z;
    w_tile[base + tile_row(k + 3u, BN / 4u)][comp] = v.w;
}

// Split-K's second pass: C[row, col] (+)= the sum over the `p.k4` slices of the partials (rows
// z·m + row of the scratch bound as `a`, `p.lda4` vec4s apart), four outputs per invocation.
@compute @workgroup_size(64, 1, 1)
fn matmul_large_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col4 = gid.x;
    let row = gid.y;
    if (col4 * 4u >= p.n || row >= p.m) {
        return;
    }
    var s = vec4<f32>(0.0);
    for (var z = 0u; z < p.k4; z++) {
        s += a[(z * p.m + row) * p.lda4 + col4];
    }
    for (var jj = 0u; jj < 4u; jj++) {
        let col = col4 * 4u + jj;
        if (col < p.n) {
            let idx = row * p.ldc + p.c_off + col;
            var x = s[jj];
            if (p.accumulate != 0u) {
                x += c[idx];
            }
            c[idx] = x;
        }
    }
}
