// C = A · B in f32, row-major: A is M × K, B is K × N, C is M × N.
//
// Layout, prepared by src/kernels/matmul.rs: every row is padded with zeros to a multiple of
// 4 columns, so rows are whole vec4s. Zero padding along K keeps the inner loop free of edge
// tests; padded columns of C receive zeros. Rows past M are clamped for loads and skipped on
// store, so any M, N, K (including M = 1) works and every access stays in bounds.
//
// Register tiling: each invocation computes TM rows × TN vec4 columns of C, loading A as a vec4
// along K and four vec4 rows of B per step. No workgroup memory and no barriers: on CPU Vulkan
// drivers (lavapipe) invocations are SIMD lanes and barriers are expensive.

struct Dims {
    m: u32,   // rows of A and C
    k4: u32,  // padded K / 4
    n4: u32,  // padded N / 4
    _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
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
    if (col0 >= dims.n4 || row0 >= dims.m) {
        return;
    }
    let n4 = dims.n4;
    var a_row: array<u32, MAX_TM>;
    for (var i = 0u; i < TM; i++) {
        a_row[i] = min(row0 + i, dims.m - 1u) * dims.k4;
    }
    var b_col: array<u32, MAX_TN>;
    for (var j = 0u; j < TN; j++) {
        b_col[j] = min(col0 + j, n4 - 1u);
    }
    var acc: array<vec4<f32>, 32>;  // MAX_TM * MAX_TN, zero-initialised
    var av: array<vec4<f32>, MAX_TM>;
    for (var kk = 0u; kk < dims.k4; kk++) {
        for (var i = 0u; i < TM; i++) {
            av[i] = a[a_row[i] + kk];
        }
        let b_row = 4u * kk * n4;
        for (var j = 0u; j < TN; j++) {
            let b0 = b[b_row + b_col[j]];
            let b1 = b[b_row + n4 + b_col[j]];
            let b2 = b[b_row + 2u * n4 + b_col[j]];
            let b3 = b[b_row + 3u * n4 + b_col[j]];
            for (var i = 0u; i < TM; i++) {
                let t = i * MAX_TN + j;
                acc[t] = fma(vec4(av[i].x), b0, acc[t]);
                acc[t] = fma(vec4(av[i].y), b1, acc[t]);
                acc[t] = fma(vec4(av[i].z), b2, acc[t]);
                acc[t] = fma(vec4(av[i].w), b3, acc[t]);
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let row = row0 + i;
        if (row < dims.m) {
            for (var j = 0u; j < TN; j++) {
                if (col0 + j < n4) {
                    c[row * n4 + col0 + j] = acc[i * MAX_TN + j];
                }
            }
        }
    }
}
