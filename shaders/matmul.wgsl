// C (+)= A · Wᵀ: f32 activations A (M × K) times a weight slab W stored one output per row
// (N × K, K contiguous: the layout every product here reads), in any weight format: the
// format's file of shaders/common/weights/, which src/kernels prepends, unpacks them to f32. This is the register tier:
// no workgroup memory and no barriers, for CPU Vulkan drivers (lavapipe), where invocations are
// SIMD lanes and barriers are expensive.
//
// Each invocation computes TM rows × TN outputs, streaming its TN weight rows along K (each lane
// its own sequential stream, which CPU prefetchers follow) while the TM rows of A are the same
// for the whole workgroup (WG_Y = 1), so the driver loads them once and broadcasts.
//
// Layout, prepared by src/kernels: K is padded with zeros to whole vec4s (k4 of them). A row r
// starts at vec4 `a_off4 + r * lda4` (a stride can skip rows: the LM head reads the last token of
// each prompt). Output n of row r goes to float `r * ldc + c_off + n` (a weight too large for one
// binding is split into slabs written side by side). With `accumulate` the product is added to
// C (the residual connection, fused). Rows past M and outputs past N are clamped for loads and
// skipped on store, so every access stays in bounds for any M, N, K.

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

override WG_X: u32 = 64u;  // invocations along N
override WG_Y: u32 = 1u;   // invocations along M (1 keeps A's rows uniform per workgroup)
override TM: u32 = 8u;     // rows per invocation, 1..=MAX_TM
override TN: u32 = 1u;     // outputs per invocation, 1..=MAX_TN

const MAX_TM: u32 = 8u;
const MAX_TN: u32 = 8u;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let col0 = (wid.x * WG_X + lid.x) * TN;
    // With WG_Y = 1 this folds to wid.y: the same for every lane of the workgroup.
    let ly = select(lid.y, 0u, WG_Y == 1u);
    let row0 = (wid.y * WG_Y + ly) * TM;
    if (col0 >= p.n || row0 >= p.m) {
        return;
    }
    var a_row: array<u32, MAX_TM>;
    for (var i = 0u; i < TM; i++) {
        a_row[i] = p.a_off4 + min(row0 + i, p.m - 1u) * p.lda4;
    }
    var w_row: array<u32, MAX_TN>;
    for (var j = 0u; j < TN; j++) {
        w_row[j] = w_base(min(col0 + j, p.n - 1u));
    }
    var acc: array<f32, 64>;  // MAX_TM * MAX_TN, zero-initialised
    var av: array<vec4<f32>, MAX_TM>;
    for (var kk = 0u; kk < p.k4; kk++) {
        for (var i = 0u; i < TM; i++) {
            av[i] = a[a_row[i] + kk];
        }
        for (var j = 0u; j < TN; j++) {
            let wv = w_vec4(w_row[j], kk);
            for (var i = 0u; i < TM; i++) {
                let t = i * MAX_TN + j;
                acc[t] = fma(av[i].x, wv.x, acc[t]);
                acc[t] = fma(av[i].y, wv.y, acc[t]);
                acc[t] = fma(av[i].z, wv.z, acc[t]);
                acc[t] = fma(av[i].w, wv.w, acc[t]);
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let row = row0 + i;
        if (row < p.m) {
            for (var j = 0u; j < TN; j++) {
                if (col0 + j < p.n) {
                    let idx = row * p.ldc + p.c_off + col0 + j;
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
